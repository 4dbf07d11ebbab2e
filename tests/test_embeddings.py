"""Embedding cache, content texts, the local backend, token estimates, batching and the --dry-run plan."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipelines.embeddings.cached import embed_cached
from pipelines.embeddings.plan import plan_embedding
from pipelines.embeddings.texts import content_text
from services.embeddings.backends import EmbeddingError, LocalE5Backend, cache_key, make_backend
from services.embeddings.openai_backend import (
    OpenAIBackend,
    estimate_tokens,
    plan_batches,
    token_upper_bound,
    truncate,
)
from services.settings import Settings
from services.stores.embedding_cache import EmbeddingCache, text_hash
from services.stores.generations import resolve_generation

KO_OVERVIEW = (
    "카우보이 인형 우디는 주인 앤디의 가장 사랑받는 장난감이다. 그러나 앤디의 생일 선물로 최신형 우주 전사 "
    "버즈 라이트이어가 등장하면서 우디의 자리는 위태로워진다."
)


def fake_vector(text: str, dim: int, salt: str = "") -> np.ndarray:
    seed = int(hashlib.sha256((salt + text).encode()).hexdigest()[:12], 16)
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


class CountingBackend:
    """Deterministic vectors; records every batch it is asked to embed."""

    name = "fake"

    def __init__(self, model: str = "fake-a", dim: int = 8, fail_on: str | None = None) -> None:
        self.model, self.dim, self.fail_on = model, dim, fail_on
        self.batches: list[list[str]] = []

    @property
    def embedded(self) -> list[str]:
        return [t for b in self.batches for t in b]

    def embed_passages(self, texts):
        if self.fail_on is not None and self.fail_on in texts:
            raise EmbeddingError("injected failure")
        self.batches.append(list(texts))
        return np.stack([fake_vector(t, self.dim, self.model) for t in texts])

    def embed_queries(self, texts):
        return self.embed_passages(texts)


@pytest.fixture
def cache(tmp_path: Path):
    c = EmbeddingCache(tmp_path / "cache.sqlite")
    yield c
    c.close()


# -- content texts -------------------------------------------------------------------------------


def test_content_text_prefers_overview_and_collapses_whitespace():
    row = {"overview": "  봉준호 감독의\n\n 영화.  ", "movie_title": "Mother", "genres": "Drama"}
    assert content_text(row) == "봉준호 감독의 영화."


def test_content_text_falls_back_to_title_year_genres():
    row = {
        "overview": None,
        "movie_title": "Toy Story",
        "release_date": date(1995, 1, 1),
        "genres": "Adventure|Animation",
    }
    assert content_text(row) == "Toy Story (1995). Adventure, Animation"
    assert content_text({"movie_title": "Untitled", "genres": ""}) == "Untitled"


# -- local backend -------------------------------------------------------------------------------


def test_local_backend_embeds_korean_passages_and_queries():
    backend = make_backend(Settings())
    assert isinstance(backend, LocalE5Backend) and backend.model == "multilingual-e5-small"
    texts = [KO_OVERVIEW, "장난감들의 모험을 그린 애니메이션", "1945년 뉴욕 마피아 가문의 이야기"]
    passages = backend.embed_passages(texts)
    assert passages.shape == (3, backend.dim) == (3, 384) and passages.dtype == np.float32
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
    query = backend.embed_queries(["카우보이 인형과 우주 전사 장난감"])[0]
    scores = passages @ query
    assert scores[0] > scores[2]  # the toy story overview is closer than the mafia one
    assert not np.allclose(backend.embed_queries([KO_OVERVIEW])[0], passages[0])  # query: vs passage:
    assert backend.estimate_tokens(KO_OVERVIEW) > 20  # exact, from the model's own tokenizer
    assert cache_key(backend) == ("local", "multilingual-e5-small", 384)


def test_local_backend_refuses_models_it_does_not_have():
    with pytest.raises(EmbeddingError, match="NEXTWATCH_EMBEDDING_BACKEND=openai"):
        make_backend(Settings(embedding_model="text-embedding-3-small"))
    with pytest.raises(EmbeddingError, match="384"):
        make_backend(Settings(embedding_dimensions=256))


def test_default_model_depends_on_the_backend(monkeypatch):
    monkeypatch.delenv("NEXTWATCH_EMBEDDING_MODEL", raising=False)
    assert Settings().embedding.resolved_model == "multilingual-e5-small"
    assert Settings(embedding_backend="openai").embedding.resolved_model == "text-embedding-3-small"
    backend = make_backend(Settings(embedding_backend="openai", embedding_model="text-embedding-ada-002"))
    assert isinstance(backend, OpenAIBackend) and (backend.model, backend.dim) == ("text-embedding-ada-002", 1536)
    with pytest.raises(EmbeddingError, match="always returns 1536"):
        make_backend(
            Settings(embedding_backend="openai", embedding_model="text-embedding-ada-002", embedding_dimensions=512)
        )


# -- cache ---------------------------------------------------------------------------------------


def test_second_run_embeds_nothing_and_changed_text_is_reembedded(cache):
    texts = ["a", "b", "c", "b", "d", "e"]
    backend = CountingBackend()
    first, fresh = embed_cached(backend, cache, texts, batch_size=2, progress=False)
    assert fresh == 5 and sorted(backend.embedded) == ["a", "b", "c", "d", "e"]  # "b" once
    assert [len(b) for b in backend.batches] == [2, 2, 1]
    assert np.allclose(first[1], first[3])

    again = CountingBackend()
    second, fresh = embed_cached(again, cache, texts, progress=False)
    assert fresh == 0 and again.batches == []
    assert np.array_equal(first, second)

    changed = CountingBackend()
    third, fresh = embed_cached(changed, cache, ["a", "b", "C!", "b", "d", "e"], progress=False)
    assert fresh == 1 and changed.embedded == ["C!"]
    assert np.array_equal(third[[0, 1, 3, 4, 5]], first[[0, 1, 3, 4, 5]])
    assert np.allclose(third[2], fake_vector("C!", 8, "fake-a"))


def test_cache_never_mixes_models_or_sizes(cache):
    texts = ["x", "y"]
    embed_cached(CountingBackend("fake-a", 8), cache, texts, progress=False)
    other_model = CountingBackend("fake-b", 8)
    vectors, fresh = embed_cached(other_model, cache, texts, progress=False)
    assert fresh == 2 and np.allclose(vectors[0], fake_vector("x", 8, "fake-b"))
    other_size = CountingBackend("fake-a", 4)
    vectors, fresh = embed_cached(other_size, cache, texts, progress=False)
    assert fresh == 2 and vectors.shape == (2, 4)
    assert cache.count() == 6


def test_failed_batch_raises_and_the_rerun_resumes_after_the_cached_batches(cache):
    texts = [f"t{i}" for i in range(7)]
    failing = CountingBackend(fail_on="t4")
    with pytest.raises(EmbeddingError):
        embed_cached(failing, cache, texts, batch_size=2, progress=False)
    assert failing.embedded == ["t0", "t1", "t2", "t3"]  # the batch with t4 was not skipped past
    resumed = CountingBackend()
    vectors, fresh = embed_cached(resumed, cache, texts, batch_size=2, progress=False)
    assert fresh == 3 and resumed.embedded == ["t4", "t5", "t6"]
    assert all(np.allclose(v, fake_vector(t, 8, "fake-a")) for v, t in zip(vectors, texts))


def test_openai_cache_key_follows_what_shapes_the_vectors():
    assert cache_key(OpenAIBackend("text-embedding-3-small")) == ("openai", "text-embedding-3-small", 1536)
    assert cache_key(OpenAIBackend("text-embedding-3-small", dimensions=512))[2] == 512
    assert cache_key(OpenAIBackend("text-embedding-3-large")) == ("openai", "text-embedding-3-large", 3072)
    prefixed = OpenAIBackend("e5-on-tei", dimensions=384, passage_prefix="passage: ")
    assert cache_key(prefixed) == ("openai", "e5-on-tei[prefix='passage: ']", 384)
    typed = OpenAIBackend("multilingual-e5-small", send_input_type=True)
    assert cache_key(typed) == ("openai", "multilingual-e5-small[input_type=passage]", 384)


# -- length, truncation and batching -------------------------------------------------------------

# (text, tokens by the real cl100k_base tokenizer), counted offline during development
CL100K = [
    (
        "어린 시절 가장 친한 친구였던 두 남자가 성인이 되어 다시 만나게 되면서 벌어지는 이야기. 감독 봉준호의 세 번째 "
        "장편 영화로, 2006년 개봉했다.",
        85,
    ),
    (KO_OVERVIEW, 89),
    (
        "Led by Woody, Andy's toys live happily in his room until Andy's birthday brings Buzz Lightyear onto "
        "the scene. Afraid of losing his place in Andy's heart, Woody plots against Buzz. But when "
        "circumstances separate Buzz and Woody from their owner, the duo eventually learns to put aside their "
        "differences.",
        61,
    ),
    ("Toy Story (1995). Adventure, Animation, Children, Comedy, Fantasy", 15),
    ("뷁 똠 햏 쀍 꿻 휐 퓳 얌 뽈 쭹", 29),  # rare syllables: BPE falls back to bytes
]


def test_token_estimate_is_close_for_overviews_and_the_bound_always_holds():
    for text, tokens in CL100K[:4]:
        assert tokens * 0.95 <= estimate_tokens(text) <= tokens * 1.45, text
    for text, tokens in CL100K:
        assert token_upper_bound(text) >= tokens


def test_truncate_keeps_whole_characters_under_the_byte_bound():
    long_korean = KO_OVERVIEW * 100  # ~29 kB
    cut = truncate(long_korean, 8191)
    assert token_upper_bound(cut) <= 8191 and long_korean.startswith(cut)
    assert len(cut) > 2000 and "\ufffd" not in cut
    assert truncate("short", 8191) == "short"
    backend = OpenAIBackend("text-embedding-3-small")
    sent = backend._prepare(long_korean, "passage")
    assert token_upper_bound(sent) <= 8191
    assert backend._prepare("", "passage") == " "  # OpenAI rejects empty inputs
    assert OpenAIBackend("multilingual-e5-small")._prepare(long_korean, "passage") == long_korean


def test_plan_batches_by_count_and_token_budget():
    sizes = [5, 5, 5, 40, 5, 100, 5, 5, 5, 5]
    ranges = plan_batches(sizes, max_inputs=3, max_tokens=50)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(sizes)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # consecutive, nothing skipped
    for start, end in ranges:
        assert end - start <= 3
        assert sum(sizes[start:end]) <= 50 or end - start == 1  # an oversize item goes alone
    assert (5, 6) in ranges
    assert plan_batches([], 3, 50) == []
    backend = OpenAIBackend("text-embedding-3-small", batch_size=5000, max_batch_tokens=10)
    assert backend.plan_batches(["abcd"] * 6) == [(0, 2), (2, 4), (4, 6)]
    assert OpenAIBackend("text-embedding-3-small", batch_size=5000).batch_size == 2048


# -- dry-run plan --------------------------------------------------------------------------------


def test_plan_counts_cache_hits_tokens_and_cost_without_any_request(cache, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    backend = OpenAIBackend("text-embedding-3-small", batch_size=2)
    texts = [CL100K[0][0], KO_OVERVIEW, CL100K[2][0], CL100K[3][0], KO_OVERVIEW]
    cache.put_many(*cache_key(backend), {text_hash(CL100K[3][0]): np.zeros(1536, np.float32)})
    plan = plan_embedding(backend, cache, texts, batch_size=2)
    assert backend._client is None  # no client, so no request and no key needed
    assert (plan.texts, plan.unique, plan.cached, plan.to_embed, plan.requests) == (5, 4, 1, 3, 2)
    todo = texts[:3]
    assert plan.estimated_tokens == sum(estimate_tokens(t) for t in todo)
    assert plan.max_tokens == sum(token_upper_bound(t) for t in todo)
    assert plan.estimated_cost_usd == pytest.approx(plan.estimated_tokens * 0.02 / 1e6)
    assert "to embed: 3 in 2 requests" in plan.describe() and "$0.0000" in plan.describe()
    ada = plan_embedding(OpenAIBackend("text-embedding-ada-002"), cache, texts)
    assert ada.usd_per_million_tokens == 0.10 and ada.to_embed == 4
    large = plan_embedding(OpenAIBackend("text-embedding-3-large"), cache, texts)
    assert large.usd_per_million_tokens == 0.13
    unknown = plan_embedding(OpenAIBackend("my-server-model"), cache, texts)
    assert unknown.dim is None and unknown.to_embed == 4 and unknown.usd_per_million_tokens == 0


def test_plan_for_the_local_backend_is_free(cache):
    backend = LocalE5Backend()
    plan = plan_embedding(backend, cache, [KO_OVERVIEW, "Toy Story (1995)"])
    assert plan.to_embed == 2 and plan.estimated_tokens == plan.max_tokens > 0
    assert plan.estimated_cost_usd == 0 and "$0" in plan.describe()


# -- the CLI over a tiny catalog -----------------------------------------------------------------


@pytest.fixture
def tiny_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir whose catalog holds six movies (Korean overviews and title-only ones)."""
    from services.stores.catalog import Catalog

    for var in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "NEXTWATCH_EMBEDDING_MODEL",
        "NEXTWATCH_QDRANT_URL",
        "NEXTWATCH_EMBEDDING_BACKEND",
        "NEXTWATCH_DATABASE_URL",
        "NEXTWATCH_COLLECTION",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NEXTWATCH_DATA_DIR", str(tmp_path))
    catalog = Catalog(resolve_generation(Settings()).catalog_url)
    catalog.create_schema()
    overviews = [
        CL100K[0][0],
        KO_OVERVIEW,
        "1945년 여름, 뉴욕의 마피아 대부 비토 콜레오네의 딸 코니의 결혼식.",
        None,
        None,
        CL100K[2][0],
    ]
    catalog.upsert_movies(
        [
            {
                "movie_id": i + 1,
                "movie_title": f"Movie {i + 1}",
                "original_title": f"Movie {i + 1}",
                "overview": overview,
                "release_date": date(2000 + i, 1, 1),
                "genres": "Drama|Comedy",
                "adult": "N",
                "useyn": "Y",
                "regtime": datetime(2024, 1, 1),
            }
            for i, overview in enumerate(overviews)
        ]
    )
    catalog.close()
    return tmp_path


def _run(*args: str):
    from pipelines.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_dry_run_then_real_run_then_nothing_left(tiny_data_dir, monkeypatch):
    monkeypatch.setenv("NEXTWATCH_EMBEDDING_BACKEND", "openai")
    paid = _run("embed", "--dry-run")  # no key, no server: planning calls nothing
    assert paid.exit_code == 0, paid.output
    assert "text-embedding-3-small (1536-d)" in paid.stdout and "to embed: 6" in paid.stdout
    assert "estimated cost: $" in paid.stdout and "per 1M tokens" in paid.stdout

    monkeypatch.setenv("NEXTWATCH_EMBEDDING_BACKEND", "local")
    assert "to embed: 6" in _run("embed", "--dry-run").stdout
    built = _run("embed", "--quiet")
    assert built.exit_code == 0, built.output
    assert "6 vectors (6 newly embedded)" in built.output
    plan = _run("embed", "--dry-run")
    assert "cached: 6, to embed: 0 in 0 requests" in plan.stdout


def test_cli_refuses_a_model_switch_without_recreate(tiny_data_dir, monkeypatch):
    assert _run("embed", "--quiet").exit_code == 0  # local, 384-d multilingual-e5-small
    monkeypatch.setenv("NEXTWATCH_EMBEDDING_BACKEND", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens: a request would fail
    monkeypatch.setenv("NEXTWATCH_EMBEDDING_MAX_RETRIES", "0")
    refused = _run("embed", "--quiet")
    assert refused.exit_code == 1
    assert "--recreate" in refused.stderr and "multilingual-e5-small" in refused.stderr
    assert "text-embedding-3-small" in refused.stderr and "connection" not in refused.stderr.lower()


def test_build_refuses_same_size_model_switch_before_embedding_anything(tmp_path):
    from pipelines.embeddings.vectors import build_vectors
    from services.stores.build_state import BuildState
    from services.stores.vectors import VectorStoreError, open_vector_store

    class FakeCatalog:
        def content_rows(self):
            for i in range(5):
                yield {
                    "movie_id": i + 1,
                    "overview": f"movie number {i}",
                    "genres": "Drama",
                    "release_date": date(2001, 1, 1),
                    "series_id": None,
                }

    settings = Settings(data_dir=tmp_path)
    store = open_vector_store(settings)
    cache = EmbeddingCache(settings.embedding_cache_path)
    state = BuildState(settings.data_dir)
    try:
        first = build_vectors(FakeCatalog(), store, CountingBackend("fake-a"), cache, state, progress=False)
        assert first.upserted and store.info().model == "fake-a"
        switched = CountingBackend("fake-b")
        with pytest.raises(VectorStoreError, match="--recreate"):
            build_vectors(FakeCatalog(), store, switched, cache, state, progress=False)
        assert switched.batches == []  # refused before any (paid) request
        assert store.info().model == "fake-a"
        rebuilt = build_vectors(FakeCatalog(), store, switched, cache, state, recreate=True, progress=False)
        assert rebuilt.upserted and rebuilt.newly_embedded == 5 and store.info().model == "fake-b"
        again = build_vectors(FakeCatalog(), store, CountingBackend("fake-b"), cache, state, progress=False)
        assert not again.upserted and again.newly_embedded == 0
    finally:
        cache.close()
        store.close()
