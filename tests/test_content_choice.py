"""The content sources' inputs: text variants, real-only series, the vector build's fingerprint and the
choice on validation pairs (a fake embedding backend: no model is loaded)."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.embeddings.texts import content_text
from pipelines.embeddings.vectors import build_vectors, vectors_digest
from pipelines.evaluation.content_choice import MemoryVectors, choose_content
from services.recommender.registry import SourceInputs, make_sources
from services.settings import ContentSettings, Settings
from services.stores.build_state import BuildState
from services.stores.catalog import MovieFacts
from services.stores.embedding_cache import EmbeddingCache

GROUP_TITLE = re.compile(r"^G(\d+) #\d+$")  # a title-only text of the hand-made catalogue


class FakeBackend:
    """Title-only texts "G<g> #<i>" cluster by group g; every other text gets its own random direction."""

    name = "fake"
    model = "fake-content"
    dim = 16

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed_passages(self, texts):
        self.embedded.extend(texts)
        out = []
        for text in texts:
            seed = int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)
            noise = np.random.default_rng(seed).standard_normal(self.dim)
            found = GROUP_TITLE.match(text)
            if found:
                centre = np.random.default_rng(int(found.group(1))).standard_normal(self.dim)
                noise = 10 * centre + 0.1 * noise
            out.append(noise / np.linalg.norm(noise))
        return np.asarray(out, dtype=np.float32)

    def embed_queries(self, texts):
        return self.embed_passages(texts)


@pytest.fixture
def cache(tmp_path: Path):
    c = EmbeddingCache(tmp_path / "cache.sqlite")
    yield c
    c.close()


def facts_of(ids: list[int], series: dict[int, int] | None = None) -> MovieFacts:
    series = series or {}
    n = len(ids)
    return MovieFacts(list(ids), [series.get(m) for m in ids], [None] * n, [1] * n, [False] * n, [""] * n)


def catalogue(groups: int = 60, size: int = 3, overviews: bool = True) -> list[dict]:
    """Movies 1.. in groups of `size` ("G<g> #<i>"), each with a distinct random overview (or none)."""
    rows = []
    for g in range(groups):
        for i in range(size):
            movie = g * size + i + 1
            rows.append(
                {
                    "movie_id": movie,
                    "movie_title": f"G{g} #{i}",
                    "original_title": None,
                    "overview": f"a story numbered {movie * 7919 % 1009}" if overviews else None,
                    "release_date": None,
                    "genres": "",
                    "series_id": None,
                }
            )
    return rows


def group_pairs(groups: int = 60, size: int = 3) -> pd.DataFrame:
    """One viewer per group: its first movie, then its second (what title-only vectors find)."""
    return pd.DataFrame(
        {
            "userId": np.arange(groups),
            "prev_movieId": [g * size + 1 for g in range(groups)],
            "movieId": [g * size + 2 for g in range(groups)],
            "timestamp": np.arange(groups) + 1_000,
        }
    )


def ratings_of(pairs: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {"userId": pairs["userId"], "movieId": pairs["movieId"], "rating": 4.0, "timestamp": pairs["timestamp"]}
    )


# -- text variants -------------------------------------------------------------------------------


def test_three_text_variants_and_the_default_is_unchanged():
    row = {
        "movie_title": "Toy Story",
        "release_date": date(1995, 11, 22),
        "genres": "Adventure|Animation",
        "overview": "  A cowboy   doll\nis jealous. ",
    }
    assert content_text(row) == content_text(row, "overview") == "A cowboy doll is jealous."
    assert content_text(row, "title") == "Toy Story (1995). Adventure, Animation"
    assert content_text(row, "both") == "Toy Story (1995). Adventure, Animation. A cowboy doll is jealous."
    bare = {**row, "overview": "   "}
    assert content_text(bare) == content_text(bare, "title") == content_text(bare, "both")
    assert content_text(bare) == "Toy Story (1995). Adventure, Animation"
    with pytest.raises(ValueError, match="unknown content text"):
        content_text(row, "plot")


def test_a_changed_text_variant_changes_the_vector_build(tmp_path, cache):
    from services.stores.vectors import open_vector_store

    rows = catalogue(groups=2)
    backend = FakeBackend()
    ids = [r["movie_id"] for r in rows]
    payloads = [{"series_id": None, "genres": [], "year": None} for _ in rows]
    digest = {
        v: vectors_digest(backend, ids, [content_text(r, v) for r in rows], payloads, v)
        for v in ("overview", "title", "both")
    }
    assert len(set(digest.values())) == 3

    class Rows:
        def content_rows(self):
            yield from (dict(r) for r in rows)

    settings = Settings(data_dir=tmp_path)
    store = open_vector_store(settings)
    state = BuildState(settings.data_dir)
    try:
        assert build_vectors(Rows(), store, backend, cache, state, progress=False).upserted
        assert not build_vectors(Rows(), store, backend, cache, state, progress=False).upserted
        titled = build_vectors(Rows(), store, backend, cache, state, progress=False, text="title")
        assert titled.upserted and titled.newly_embedded == len(rows)
        back = build_vectors(Rows(), store, backend, cache, state, progress=False)
        assert back.upserted and back.newly_embedded == 0  # the overview texts come from the cache
    finally:
        store.close()


# -- series --------------------------------------------------------------------------------------


def test_real_series_ignore_inferred_series():
    facts = facts_of([1, 2, 3, 4, 5], {1: 100, 2: 100, 3: -3, 4: -3})
    both = make_sources(SourceInputs(facts, {}, None, 42))["series"]
    real = make_sources(SourceInputs(facts, {}, None, 42, content=ContentSettings(series="real")))["series"]
    assert [m for m, _ in both.candidates([1], 5)[0]] == [2]
    assert [m for m, _ in both.candidates([3], 5)[0]] == [4]
    assert [m for m, _ in real.candidates([1], 5)[0]] == [2]
    assert real.candidates([3], 5) == [[]] and real.series_of(4) is None


# -- the choice ----------------------------------------------------------------------------------


def test_title_text_is_chosen_when_it_clearly_wins(tmp_path, cache):
    rows, pairs = catalogue(), group_pairs()
    # inferred series that hold every validation pair: "real" (none left) loses, "both" is kept
    series = {m: -(g * 3 + 1) for g in range(60) for m in (g * 3 + 1, g * 3 + 2)}
    facts = facts_of([r["movie_id"] for r in rows], series)
    result = choose_content(
        Settings(data_dir=tmp_path),
        ratings_of(pairs),
        facts,
        pairs,
        999,
        10,
        rows=rows,
        backend=FakeBackend(),
        cache=cache,
    )
    assert result["settings"] == {"content_text": "title", "content_series": "both"}
    text = result["trials"]["text"]["variants"]
    assert text["title"]["hr@10"] == 1.0 and text["overview"]["hr@10"] < 0.3
    assert text["title"]["against_default"]["ci"][0] > 0
    assert text["both"]["against_default"]["ci"][0] <= 0  # overview appended: no clusters, no win
    series_trials = result["trials"]["series"]["variants"]
    assert series_trials["both"]["hr@10"] == 1.0 and series_trials["real"]["answered"] == 0.0  # random fills it


def test_the_default_is_kept_when_no_variant_wins_by_more_than_noise(tmp_path, cache):
    rows, pairs = catalogue(), group_pairs()
    for r in rows:  # titles that do not cluster: every variant is noise
        r["movie_title"] = f"Film {r['movie_id']}"
    facts = facts_of([r["movie_id"] for r in rows])
    result = choose_content(
        Settings(data_dir=tmp_path),
        ratings_of(pairs),
        facts,
        pairs,
        999,
        10,
        rows=rows,
        backend=FakeBackend(),
        cache=cache,
    )
    assert result["settings"] == {"content_text": "overview", "content_series": "both"}
    assert all(
        t.get("against_default", {"ci": [0, 0]})["ci"][0] <= 0 for t in result["trials"]["text"]["variants"].values()
    )
    series = result["trials"]["series"]
    assert series["variants"]["real"]["same_as"] == "both" and "no inferred series" in series["note"]


def test_identical_texts_are_scored_once_and_said_so(tmp_path, cache):
    rows, pairs = catalogue(overviews=False), group_pairs()
    backend = FakeBackend()
    result = choose_content(
        Settings(data_dir=tmp_path),
        ratings_of(pairs),
        facts_of([r["movie_id"] for r in rows]),
        pairs,
        999,
        10,
        rows=rows,
        backend=backend,
        cache=cache,
    )
    text = result["trials"]["text"]
    assert result["settings"]["content_text"] == "overview"
    assert "same texts" in text["skipped"] and '"title" gives the same texts as "overview"' in text["note"]
    assert backend.embedded == []


def test_the_text_choice_is_skipped_over_the_embedding_budget_unless_asked(tmp_path, cache):
    rows, pairs = catalogue(), group_pairs()
    facts = facts_of([r["movie_id"] for r in rows])
    backend = FakeBackend()
    args = (Settings(data_dir=tmp_path), ratings_of(pairs), facts, pairs, 999, 10)
    skipped = choose_content(*args, rows=rows, backend=backend, cache=cache, budget=100)
    assert backend.embedded == [] and skipped["settings"]["content_text"] == "overview"
    assert "--content-embed" in skipped["trials"]["text"]["skipped"]
    asked = choose_content(*args, rows=rows, backend=backend, cache=cache, budget=100, embed=True)
    assert asked["settings"]["content_text"] == "title" and len(backend.embedded) == 3 * len(rows)


def test_memory_vectors_search_exactly_and_exclude():
    index = MemoryVectors([1, 2, 3], np.array([[1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32))
    assert [m for m, _ in index.search_batch(np.array([[1, 0]]), 2)[0]] == [1, 2]
    assert [m for m, _ in index.search_batch(np.array([[1, 0]]), 2, exclude=[[1]])[0]] == [2, 3]
