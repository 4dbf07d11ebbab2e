"""The explorer page's API routes: meaning search (/search), /strategies, /genres, the report files, the page."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.recommender.registry import strategy_names
from services.settings import Settings
from services.stores.generations import resolve_generation
from tests.support.servers import private_copy


@pytest.fixture(scope="module")
def client(built_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(built_settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def without_vectors(built_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The API over a copy of the build whose Qdrant shard was removed."""
    settings = private_copy(built_settings, tmp_path_factory.mktemp("novectors") / "data")
    shutil.rmtree(resolve_generation(settings).qdrant_path)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize("q", ["", "   "])
def test_search_needs_text(client: TestClient, q: str) -> None:
    response = client.get("/search", params={"q": q})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "q"]


def test_search_refuses_long_text_and_large_k(client: TestClient) -> None:
    assert client.get("/search", params={"q": "우주" * 300}).status_code == 422
    response = client.get("/search", params={"q": "space", "k": 10_000})
    assert response.status_code == 422 and "at most 100" in response.text
    assert client.get("/search").status_code == 422


def test_search_without_the_vector_store_is_503(without_vectors: TestClient) -> None:
    response = without_vectors.get("/search", params={"q": "우주를 배경으로 한 가족 영화"})
    assert response.status_code == 503
    assert response.json() == {"detail": "vectors unavailable: the vector store is not loaded"}


def test_search_finds_movies_by_meaning(client: TestClient) -> None:
    response = client.get("/search", params={"q": "  toys that come alive  ", "k": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"] == "toys that come alive"
    assert len(body["items"]) == 5 and len({i["movie_id"] for i in body["items"]}) == 5
    assert all(i["title"] for i in body["items"])
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    backend = client.app.state.runtime.query_backend()
    client.get("/search", params={"q": "space"})
    assert client.app.state.runtime.query_backend() is backend  # created once per runtime


def test_search_is_in_the_openapi(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    search = spec["paths"]["/search"]["get"]
    assert {"200", "422", "503"} <= set(search["responses"])
    assert "/strategies" in spec["paths"] and "/genres" in spec["paths"] and "/" not in spec["paths"]


def test_strategies_hybrid_first(client: TestClient, without_vectors: TestClient) -> None:
    body = client.get("/strategies").json()
    names = [s["name"] for s in body["items"]]
    assert names[0] == "hybrid" == body["default"] and sorted(names) == sorted(strategy_names())
    assert all(s["available"] for s in body["items"])
    degraded = {s["name"]: s["available"] for s in without_vectors.get("/strategies").json()["items"]}
    assert degraded["hybrid"] is True and degraded["vector"] is False


def test_genres(client: TestClient) -> None:
    genres = client.get("/genres").json()["items"]
    assert genres == sorted(genres) and "Comedy" in genres


def test_report_absent_is_404_with_a_hint(without_vectors: TestClient) -> None:
    for name in ("report.json", "report.md", "hit_ratio.png"):
        response = without_vectors.get(f"/evaluation/{name}")
        assert response.status_code == 404
        assert "nextwatch evaluate --report" in response.json()["detail"]


def test_page_files(client: TestClient) -> None:
    for path in ("/", "/evaluation"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="/static/app.js">' in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "하이브리드" in client.get("/static/i18n.js").content.decode("utf-8")
    assert client.get("/static/nothing.js").status_code == 404
    assert client.get("/static/..%2Fpage.py").status_code == 404


def test_static_files_ship_with_the_package() -> None:
    from services.api.page import STATIC_FILES

    assert {"index.html", "app.js", "style.css", "i18n.js"} <= set(STATIC_FILES)
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"services.web" = ["static/*"]' in pyproject


class _SlowBackend:
    """An embedding backend that holds every query until released (a long embedding)."""

    def __init__(self, inner: object) -> None:
        self.inner, self.started, self.release = inner, threading.Event(), threading.Event()

    def embed_queries(self, texts: list[str]) -> object:
        self.started.set()
        self.release.wait(30)
        return self.inner.embed_queries(texts)  # type: ignore[attr-defined]


def test_searches_beyond_the_cap_answer_503_at_once_and_health_does_not_wait(
    built_settings: Settings, tmp_path: Path
) -> None:
    settings = private_copy(built_settings, tmp_path / "data").updated(search_concurrency=1)
    with TestClient(create_app(settings)) as client:
        runtime = client.app.state.runtime
        slow = _SlowBackend(runtime.query_backend())
        runtime._query_backend = slow
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(client.get, "/search", params={"q": "space"})
            assert slow.started.wait(30)
            busy = client.get("/search", params={"q": "toys"})
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert busy.json()["detail"].startswith("busy: 1 meaning searches are already running")
            assert client.get("/health").status_code == 200  # neither waited for the running embedding
            slow.release.set()
            assert first.result(30).status_code == 200
        assert client.get("/search", params={"q": "toys"}).status_code == 200  # the slot is free again
