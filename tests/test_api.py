"""The HTTP API over a real built data dir (small real MovieLens release, embedded stores)."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.settings import Settings
from services.stores.catalog import Catalog


@pytest.fixture(scope="module")
def client(built_settings: Settings) -> TestClient:
    with TestClient(create_app(built_settings)) as test_client:
        yield test_client


def test_health(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def test_movie_lookup(client: TestClient) -> None:
    body = client.get("/movies/1").json()
    assert body["movie_id"] == 1 and body["movie_title"] == "Toy Story"
    assert "Animation" in body["genres"] and body["rating_count"] > 0


@pytest.mark.parametrize("strategy", ["hybrid", "series", "vector", "collaborative", "popular", "random",
                                      "series+vector"])
def test_recommendations_are_k_distinct_movies_without_the_query(client: TestClient, strategy: str) -> None:
    response = client.get("/movies/1/recommendations", params={"strategy": strategy, "k": 10})
    assert response.status_code == 200, response.text
    body = response.json()
    ids = [item["movie_id"] for item in body["items"]]
    assert body["movie_id"] == 1 and body["strategy"] == strategy
    assert len(ids) == len(set(ids)) == 10 and 1 not in ids
    assert all(item["title"] for item in body["items"])


def test_hybrid_starts_with_the_series(client: TestClient) -> None:
    items = client.get("/movies/1/recommendations?k=10").json()["items"]
    assert {i["title"] for i in items[:2]} == {"Toy Story 2", "Toy Story 3"}
    assert [i["source"] for i in items[:2]] == ["series", "series"]
    assert items[2]["source"] == "vector"


def test_unescaped_plus_in_strategy_is_accepted(client: TestClient) -> None:
    assert client.get("/movies/1/recommendations?strategy=series+vector").json()["strategy"] == "series+vector"


def test_unknown_movie_is_a_clear_404(client: TestClient) -> None:
    for path in ("/movies/999999", "/movies/999999/recommendations"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "movie 999999 not found"}


@pytest.mark.parametrize("query", ["k=0", "k=101", "k=abc", "strategy=nope", "strategy="])
def test_bad_parameters_are_422(client: TestClient, query: str) -> None:
    response = client.get(f"/movies/1/recommendations?{query}")
    assert response.status_code == 422
    assert "detail" in response.json()


@pytest.mark.parametrize("path", ["/movies/abc", "/movies/-1", "/movies/0", "/movies/99999999999999"])
def test_bad_movie_ids_are_422(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 422


def test_korean_titles_are_returned_as_utf8(built_settings: Settings, client: TestClient) -> None:
    catalog = Catalog(built_settings.catalog_url)
    original = catalog.get_movie(3114)["movie_title"]
    try:
        catalog.update_movies([{"movie_id": 3114, "movie_title": "토이 스토리 2"}])
        response = client.get("/movies/1/recommendations?strategy=series&k=2")
        assert "토이 스토리 2" in response.content.decode("utf-8")
        assert response.headers["content-type"].startswith("application/json")
    finally:
        catalog.update_movies([{"movie_id": 3114, "movie_title": original}])
        catalog.close()
