"""The API when parts of the stack are down: hybrid keeps answering, marked degraded; others say 503."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.settings import Settings
from services.stores.collaborative import CollaborativeModel
from services.stores.generations import resolve_generation
from tests.support.servers import private_copy

HYBRID = {"series": 4.0, "vector": 2.0, "collaborative": 1.0}


@pytest.fixture(scope="module")
def live_settings(built_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The build without its neighbour tables: every vector and ALS answer is asked of the stores live; hybrid
    weighted series first, then vector neighbours, then collaborative ones (what these tests take apart)."""
    settings = private_copy(built_settings, tmp_path_factory.mktemp("live") / "data", fusion_weights=HYBRID)
    shutil.rmtree(resolve_generation(settings).neighbours_dir)
    for part in resolve_generation(settings).models_dir().joinpath("als").glob("collaborative.*"):
        part.unlink()
    return settings


@pytest.fixture
def client(live_settings: Settings) -> Iterator[TestClient]:
    """Short time limits, no neighbour cache: every request reaches the stores."""
    settings = live_settings.updated(store_timeout_seconds=0.3, neighbour_cache_size=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def kill_vectors(client: TestClient, monkeypatch: pytest.MonkeyPatch, failure: object) -> None:
    """Make every call of the running app's vector store raise (or hang past the time limit)."""
    store = client.app.state.runtime.vectors

    def broken(*args: object, **kwargs: object) -> object:
        if failure == "hang":
            time.sleep(3.0)
            return {}
        raise ConnectionError("qdrant is down")

    for method in ("vectors", "search_batch", "search", "info"):
        monkeypatch.setattr(store, method, broken)


@pytest.mark.parametrize("failure", ["raise", "hang"])
def test_hybrid_answers_without_the_vector_store(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    healthy = client.get("/movies/1/recommendations?k=10").json()
    assert healthy["degraded"] is False and "vector" in {i["source"] for i in healthy["items"]}
    kill_vectors(client, monkeypatch, failure)
    started = time.perf_counter()
    response = client.get("/movies/1/recommendations?k=10")
    assert time.perf_counter() - started < 2.0  # the time limit (0.3 s), not the hang (3 s)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["degraded"] is True and body["missing"] == ["vectors"]
    assert len(body["items"]) == 10 and {i["source"] for i in body["items"]} <= {"series", "collaborative", "popular"}
    assert [i["source"] for i in body["items"][:2]] == ["series", "series"]
    batch = client.post("/recommendations/batch", json={"movie_ids": [1, 2], "k": 5}).json()
    assert batch["degraded"] is True and all(len(r["items"]) == 5 for r in batch["results"])
    metrics = client.get("/metrics").text
    assert 'nextwatch_degraded_responses_total{missing="vectors",strategy="hybrid"}' in metrics


def test_neighbour_lists_in_memory_outlive_the_vector_store(
    live_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(live_settings)) as client:
        before = client.get("/movies/2/recommendations?k=10").json()
        kill_vectors(client, monkeypatch, "raise")
        assert client.get("/movies/2/recommendations?k=10").json() == before  # remembered: not degraded
        assert client.get("/movies/1/recommendations?k=10").json()["degraded"] is True  # never asked before


def test_strategies_that_need_the_vector_store_say_503(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    kill_vectors(client, monkeypatch, "raise")
    for strategy in ("vector", "series+vector"):
        response = client.get(f"/movies/1/recommendations?strategy={strategy}")
        assert response.status_code == 503
        assert response.json()["detail"] == "vectors unavailable: ConnectionError"  # the message only in the log
    assert client.get("/movies/1/recommendations?strategy=collaborative").status_code == 200


def test_ready_names_the_part_that_is_down(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    kill_vectors(client, monkeypatch, "raise")
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["missing"] == ["vectors"]
    assert body["parts"]["catalog"] == "ok" and body["parts"]["vectors"] == "ConnectionError"
    assert client.get("/health").status_code == 200


def test_a_catalog_that_is_down_is_a_503_not_a_500(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = client.app.state.runtime.catalog

    def down(*args: object, **kwargs: object) -> object:
        raise OSError("database is gone")

    for method in ("get_movie", "get_movies", "search_movies", "titles", "ping"):
        monkeypatch.setattr(catalog, method, down)
    response = client.get("/movies/1")
    assert response.status_code == 503 and response.json() == {"detail": "catalog unavailable: OSError"}
    assert client.get("/movies", params={"q": "toy"}).status_code == 503
    assert client.get("/all/").status_code == 503
    assert client.get("/ready").json()["missing"] == ["catalog"]
    # recommendations need only the startup snapshot of the catalogue: they keep answering
    assert client.get("/movies/1/recommendations").json()["items"][0]["title"] in {"Toy Story 2", "Toy Story 3"}


def test_without_the_als_model(live_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CollaborativeModel, "exists", staticmethod(lambda directory: False))
    with TestClient(create_app(live_settings)) as client:
        body = client.get("/movies/1/recommendations?k=10").json()
        assert body["degraded"] is True and body["missing"] == ["collaborative"] and len(body["items"]) == 10
        assert client.get("/movies/1/recommendations?strategy=collaborative").status_code == 503
        user = client.post("/users/recommendations", json={"ratings": {"1": 5}, "k": 4}).json()
        assert user["degraded"] is True and user["missing"] == ["collaborative"]
        assert [i["source"] for i in user["items"]] == ["popular"] * 4
        assert len(client.get("/item-based/1").json()["result"]) == 10  # hybrid stands in
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["parts"]["collaborative"] == "missing"


def test_neighbour_tables_answer_while_the_vector_store_is_down(
    built_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the build's tables loaded, item-to-item answers never reach the vector store."""
    settings = built_settings.model_copy(
        update={"store_timeout_seconds": 0.3, "neighbour_cache_size": 0, "fusion_weights": HYBRID}
    )
    with TestClient(create_app(settings)) as client:
        assert set(client.app.state.runtime.tables) == {"vector", "collaborative", "learned"}
        healthy = client.get("/movies/1/recommendations?k=10").json()
        kill_vectors(client, monkeypatch, "raise")
        for strategy in ("hybrid", "vector", "series+vector"):
            response = client.get(f"/movies/1/recommendations?k=10&strategy={strategy.replace('+', '%2B')}")
            assert response.status_code == 200, response.text
            assert response.json()["degraded"] is False
        assert client.get("/movies/1/recommendations?k=10").json() == healthy
