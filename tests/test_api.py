"""The HTTP API over a real built data dir (small real MovieLens release, embedded stores)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.settings import Settings
from services.stores.catalog import Catalog
from services.stores.generations import resolve_generation

KOREAN = {1: "토이 스토리", 3114: "토이 스토리 2", 78499: "토이 스토리 3"}


@pytest.fixture(scope="module")
def client(built_settings: Settings) -> Iterator[TestClient]:
    """The API with small limits, over the catalog with the Toy Story movies under Korean titles (their
    original titles stay English), set before the app starts (it reads titles at startup)."""
    settings = built_settings.updated(max_batch=5, max_user_ratings=4, max_exclude=3)
    catalog = Catalog(resolve_generation(built_settings).catalog_url)
    originals = catalog.titles(list(KOREAN))
    try:
        catalog.update_movies([{"movie_id": m, "movie_title": t} for m, t in KOREAN.items()])
        with TestClient(create_app(settings)) as test_client:
            yield test_client
    finally:
        catalog.update_movies([{"movie_id": m, "movie_title": t} for m, t in originals.items()])
        catalog.close()


def error(response) -> str:
    """The error message of a JSON error body (404/413/503 strings, 422 lists)."""
    detail = response.json()["detail"]
    return detail if isinstance(detail, str) else " ".join(d["msg"] for d in detail)


# ---- ops -----------------------------------------------------------------------------------------


def test_health(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def test_ready_when_every_part_answers(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "missing": [],
        "parts": {"catalog": "ok", "vectors": "ok", "collaborative": "ok", "sequential": "ok", "learned": "ok"},
    }


def test_metrics_count_requests_per_route_and_strategy(client: TestClient) -> None:
    client.get("/movies/1/recommendations?strategy=vector")
    text = client.get("/metrics").text
    assert "# TYPE nextwatch_http_request_duration_seconds histogram" in text
    assert (
        'nextwatch_http_requests_total{method="GET",route="/movies/{movie_id}/recommendations",'
        'status="200",strategy="vector"}'
    ) in text
    assert (
        'nextwatch_http_request_duration_seconds_bucket{le="0.005",route="/movies/{movie_id}/recommendations"'
        ',strategy="vector"}' in text
    )


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert len(generated) == 32 and generated != "bad id\twith spaces"


def test_access_log_is_one_json_line_per_request(client: TestClient) -> None:
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(handler.format(record))  # type: ignore[method-assign]
    from services.api.observability import ACCESS_LOGGER, JsonFormatter

    handler.setFormatter(JsonFormatter())
    logging.getLogger(ACCESS_LOGGER).addHandler(handler)
    try:
        client.get("/movies/1/recommendations?k=3", headers={"X-Request-ID": "log-test"})
    finally:
        logging.getLogger(ACCESS_LOGGER).removeHandler(handler)
    entry = json.loads(lines[-1])
    assert entry["request_id"] == "log-test" and entry["status"] == 200 and entry["strategy"] == "hybrid"
    assert entry["route"] == "/movies/{movie_id}/recommendations" and entry["duration_ms"] > 0


def test_openapi_documents_every_endpoint_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert paths >= {
        ("GET", "/movies/{movie_id}"),
        ("GET", "/movies"),
        ("GET", "/movies/random"),
        ("GET", "/series/{series_id}"),
        ("GET", "/movies/{movie_id}/recommendations"),
        ("POST", "/recommendations/batch"),
        ("POST", "/users/recommendations"),
        ("GET", "/all/"),
        ("GET", "/genres/{genre}"),
        ("GET", "/item-based/{item_id}"),
        ("GET", "/user-based/"),
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/metrics"),
    }
    schemas = spec["components"]["schemas"]
    for name in ("Movie", "Recommendations", "BatchRequest", "UserRatings", "UserRecommendations", "LegacyResult"):
        assert schemas[name].get("examples"), name


# ---- movies --------------------------------------------------------------------------------------


def test_movie_lookup(client: TestClient) -> None:
    body = client.get("/movies/1").json()
    assert body["movie_id"] == 1 and body["movie_title"] == "토이 스토리" and body["original_title"] == "Toy Story"
    assert "Animation" in body["genres"] and body["rating_count"] > 0
    assert body["series_title"] == "Toy Story" and body["series_inferred"] is True


def test_poster_and_imdb_urls(built_settings: Settings, client: TestClient) -> None:
    neighbour = client.get("/item-based/1").json()["result"][0]["movieId"]
    catalog = Catalog(resolve_generation(built_settings).catalog_url)
    try:
        catalog.update_movies([{"movie_id": neighbour, "poster_path": "/abc.jpg", "imdb_id": "tt0113497"}])
        body = client.get(f"/movies/{neighbour}").json()
        legacy = client.get("/item-based/1").json()["result"][0]
    finally:
        catalog.update_movies([{"movie_id": neighbour, "poster_path": None, "imdb_id": None}])
        catalog.close()
    assert body["poster_url"] == legacy["poster_path"] == "https://image.tmdb.org/t/p/w500/abc.jpg"
    assert body["imdb_url"] == "https://www.imdb.com/title/tt0113497/"
    assert legacy["imdbId"] == "0113497" and legacy["url"] == "http://www.imdb.com/title/tt0113497/"


def test_search_by_korean_and_original_title(client: TestClient) -> None:
    korean = client.get("/movies", params={"q": "스토리 2"}).json()["items"]
    assert [m["movie_title"] for m in korean] == ["토이 스토리 2"]
    both = client.get("/movies", params={"q": "토이 스토리"}).json()["items"]
    assert {m["movie_id"] for m in both} == set(KOREAN)
    original = client.get("/movies", params={"q": "toy STORY 3"}).json()["items"]
    assert [(m["movie_id"], m["movie_title"], m["original_title"]) for m in original] == [
        (78499, "토이 스토리 3", "Toy Story 3")
    ]


def test_search_by_genre_and_title(client: TestClient) -> None:
    items = client.get("/movies", params={"q": "toy", "genre": "animation", "limit": 2}).json()["items"]
    assert len(items) == 2 and all("Animation" in m["genres"] for m in items)
    assert all("toy" in m["movie_title"].lower() or "toy" in m["original_title"].lower() for m in items)
    counts = [m["rating_count"] for m in items]
    assert counts == sorted(counts, reverse=True)
    assert client.get("/movies", params={"q": "%"}).json()["items"] == []  # LIKE wildcards are literal


@pytest.mark.parametrize(
    "query, message",
    [
        ({}, "give a title"),
        ({"q": "  "}, "give a title"),
        ({"genre": "nope"}, "unknown genre 'nope'"),
        ({"q": "toy", "limit": 0}, "greater than or equal to 1"),
        ({"q": "toy", "limit": 101}, "limit must be at most 100"),
        ({"q": "x" * 201}, "at most 200 characters"),
    ],
)
def test_search_errors_are_422(client: TestClient, query: dict, message: str) -> None:
    response = client.get("/movies", params=query)
    assert response.status_code == 422 and message in error(response)


def test_random_movies(client: TestClient) -> None:
    items = client.get("/movies/random", params={"genre": "comedy", "limit": 7}).json()["items"]
    assert len(items) == len({m["movie_id"] for m in items}) == 7
    assert all("Comedy" in m["genres"] for m in items)
    assert len(client.get("/movies/random").json()["items"]) == 10
    assert client.get("/movies/random", params={"genre": "nope"}).status_code == 422


def test_series_in_release_order(client: TestClient) -> None:
    series_id = client.get("/movies/1").json()["series_id"]
    body = client.get(f"/series/{series_id}").json()
    assert body["series_title"] == "Toy Story" and body["inferred"] is True
    assert [m["movie_title"] for m in body["movies"]] == ["토이 스토리", "토이 스토리 2", "토이 스토리 3"]
    assert all(m["series_title"] == "Toy Story" for m in body["movies"])


# ---- recommendations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy", ["hybrid", "series", "vector", "collaborative", "popular", "random", "series+vector"]
)
def test_recommendations_are_k_distinct_movies_without_the_query(client: TestClient, strategy: str) -> None:
    response = client.get("/movies/1/recommendations", params={"strategy": strategy, "k": 10})
    assert response.status_code == 200, response.text
    body = response.json()
    ids = [item["movie_id"] for item in body["items"]]
    assert body["movie_id"] == 1 and body["strategy"] == strategy
    assert body["degraded"] is False and body["missing"] == []
    assert len(ids) == len(set(ids)) == 10 and 1 not in ids
    assert all(item["title"] for item in body["items"])


def test_hybrid_fuses_its_sources_by_weight_and_explains_them(built_settings: Settings) -> None:
    """Series weighted highest: the series leads, then the fused neighbours; explain gives every item's parts."""
    weights = {"series": 4.0, "vector": 1.0, "sequential": 1.0, "collaborative": 0.5}
    with TestClient(create_app(built_settings.updated(fusion_weights=weights))) as client:
        items = client.get("/movies/1/recommendations?k=10").json()["items"]
        assert {i["movie_id"] for i in items[:2]} == {3114, 78499}
        assert [i["source"] for i in items[:2]] == ["series", "series"]
        assert {i["source"] for i in items[2:]} <= {"vector", "sequential", "collaborative", "popular"}
        assert all(i["contributions"] is None and i["viewers"] is None for i in items)
        explained = client.get("/movies/1/recommendations?k=10&explain=true").json()["items"]
        assert [i["movie_id"] for i in explained] == [i["movie_id"] for i in items]
        for item in explained:
            parts = item["contributions"]
            assert parts and set(parts) <= set(weights) and item["source"] == max(parts, key=parts.get)
            assert item["score"] == pytest.approx(sum(parts.values()))
        assert any(i["viewers"] for i in explained if "sequential" in i["contributions"])
        batch = client.post("/recommendations/batch", json={"movie_ids": [1], "k": 10, "explain": True}).json()
        assert batch["results"][0]["items"] == explained


def test_sequential_and_recent_popular_are_served(client: TestClient) -> None:
    for strategy in ("sequential", "recent-popular"):
        body = client.get(f"/movies/1/recommendations?k=10&strategy={strategy}").json()
        ids = [i["movie_id"] for i in body["items"]]
        assert len(set(ids)) == 10 and 1 not in ids and body["items"][0]["source"] == strategy
    sequential = client.get("/movies/1/recommendations?k=5&strategy=sequential&explain=true").json()["items"]
    assert all(i["viewers"] for i in sequential) and all(set(i["contributions"]) == {"sequential"} for i in sequential)


def test_exclude_and_genre_filters(client: TestClient) -> None:
    excluded = client.get("/movies/1/recommendations?k=10&exclude=3114,78499").json()["items"]
    assert not {3114, 78499} & {i["movie_id"] for i in excluded} and len(excluded) == 10
    repeated = client.get("/movies/1/recommendations?k=10&exclude=3114&exclude=78499").json()["items"]
    assert repeated == excluded
    drama = client.get("/movies/1/recommendations", params={"k": 10, "genre": "drama"}).json()["items"]
    assert len(drama) == 10
    assert all("Drama" in client.get(f"/movies/{i['movie_id']}").json()["genres"] for i in drama)


def test_unescaped_plus_in_strategy_is_accepted(client: TestClient) -> None:
    assert client.get("/movies/1/recommendations?strategy=series+vector").json()["strategy"] == "series+vector"


def test_unknown_movie_is_a_clear_404(client: TestClient) -> None:
    for path in ("/movies/999999", "/movies/999999/recommendations", "/item-based/999999"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "movie 999999 not found"}
    assert client.get("/series/123456").json() == {"detail": "series 123456 not found"}


@pytest.mark.parametrize(
    "query, message",
    [
        ("k=0", "greater than or equal to 1"),
        ("k=101", "k must be at most 100"),
        ("k=abc", "valid integer"),
        ("strategy=nope", "Input should be"),
        ("strategy=", "Input should be"),
        ("genre=nope", "unknown genre"),
        ("exclude=a", "exclude takes movie ids"),
        ("exclude=1,-2", "exclude takes movie ids"),
        ("exclude=99999999999", "exclude takes movie ids"),
        ("exclude=1,2,3,4", "at most 3"),
        ("include_adult=maybe", "valid boolean"),
    ],
)
def test_bad_parameters_are_422(client: TestClient, query: str, message: str) -> None:
    response = client.get(f"/movies/1/recommendations?{query}")
    assert response.status_code == 422
    assert message in error(response)


@pytest.mark.parametrize(
    "path",
    [
        "/movies/abc",
        "/movies/-1",
        "/movies/0",
        "/movies/99999999999999",
        "/series/abc",
        "/item-based/abc",
        "/movies/1.5/recommendations",
    ],
)
def test_bad_ids_are_422(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 422


def test_korean_titles_are_returned_as_utf8(client: TestClient) -> None:
    response = client.get("/movies/1/recommendations?strategy=series&k=2")
    assert "토이 스토리 2" in response.content.decode("utf-8")
    assert response.headers["content-type"].startswith("application/json")


# ---- batch ---------------------------------------------------------------------------------------


def test_batch_answers_every_id_in_order_like_single_calls(client: TestClient) -> None:
    body = {"movie_ids": [1, 2, 1], "strategy": "vector", "k": 4, "exclude": [3114]}
    response = client.post("/recommendations/batch", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["movie_id"] for r in results] == [1, 2, 1]
    single = client.get("/movies/2/recommendations?strategy=vector&k=4&exclude=3114").json()["items"]
    assert results[1]["items"] == single and results[0]["items"] == results[2]["items"]
    assert all(3114 not in {i["movie_id"] for i in r["items"]} for r in results)


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"movie_ids": [1, 2, 3, 4, 5, 6]}, 413, "at most 5 movie ids per request, got 6"),
        ({"movie_ids": [1], "exclude": [2, 3, 4, 5]}, 413, "at most 3 excluded ids"),
        ({"movie_ids": []}, 422, "at least 1 item"),
        ({"movie_ids": [1], "k": 101}, 422, "k must be at most 100"),
        ({"movie_ids": [1], "strategy": "nope"}, 422, "Input should be"),
        ({"movie_ids": ["x"]}, 422, "valid integer"),
        ({"movie_ids": [1], "genre": "nope"}, 422, "unknown genre"),
        ({"movie_ids": [1], "surprise": 1}, 422, "Extra inputs are not permitted"),
        ({"movie_ids": [1, 999998, 999999]}, 404, "movies not found: 999998, 999999"),
    ],
)
def test_batch_errors(client: TestClient, body: dict, status: int, message: str) -> None:
    response = client.post("/recommendations/batch", json=body)
    assert response.status_code == status and message in error(response)


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post("/recommendations/batch", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


# ---- users ---------------------------------------------------------------------------------------


def test_user_recommendations_exclude_what_was_rated_and_explain(client: TestClient) -> None:
    ratings = {"1": 5.0, "3114": 4.5, "2": 1.0}
    response = client.post("/users/recommendations", json={"ratings": ratings, "k": 5, "explain": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["used"] == [1, 3114] and body["ignored"] == [2] and body["degraded"] is False
    ids = [i["movie_id"] for i in body["items"]]
    assert len(ids) == len(set(ids)) == 5 and not {1, 2, 3114} & set(ids)
    for item in body["items"]:
        assert item["source"] == "collaborative"
        assert {c["movie_id"] for c in item["because"]} <= {1, 3114}
        assert sum(c["contribution"] for c in item["because"]) == pytest.approx(item["score"], rel=0.05, abs=1e-3)
    titles = {c["title"] for item in body["items"] for c in item["because"]}
    assert titles <= {"토이 스토리", "토이 스토리 2"} and titles


def test_user_recommendations_without_usable_ratings_fall_back_to_popular(client: TestClient) -> None:
    body = client.post("/users/recommendations", json={"ratings": {"1": 1.0}, "k": 3}).json()
    assert body["used"] == [] and body["ignored"] == [1] and body["degraded"] is False
    assert [i["source"] for i in body["items"]] == ["popular"] * 3 and 1 not in {i["movie_id"] for i in body["items"]}
    assert all(i["because"] is None for i in body["items"])


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"ratings": {"1": 5, "2": 5, "3": 5, "4": 5, "5": 5}}, 413, "at most 4 ratings per request, got 5"),
        ({"ratings": {}}, 422, "at least 1 item"),
        ({"ratings": {"1": 6}}, 422, "less than or equal to 5"),
        ({"ratings": {"1": 0}}, 422, "greater than or equal to 0.5"),
        ({"ratings": {"abc": 4}}, 422, "valid integer"),
        ({"ratings": {"1": 4}, "k": 0}, 422, "greater than or equal to 1"),
        ({"ratings": {"1": 4}, "k": 1000}, 422, "k must be at most 100"),
        ({"ratings": {"1": 4, "999999": 4}}, 404, "movie 999999 not found"),
        ({"ratings": [1, 2]}, 422, "valid dictionary"),
    ],
)
def test_user_recommendation_errors(client: TestClient, body: dict, status: int, message: str) -> None:
    response = client.post("/users/recommendations", json=body)
    assert response.status_code == status and message in error(response)


# ---- the earlier service's routes ----------------------------------------------------------------

LEGACY_FIELDS = {"movieId", "title", "genres", "imdbId", "tmdbId", "url", "rating_count", "rating_avg", "poster_path"}


def test_all_is_ten_random_movie_records(client: TestClient) -> None:
    body = client.get("/all/").json()
    assert set(body) == {"result"} and len(body["result"]) == 10
    assert all(set(m) == LEGACY_FIELDS and isinstance(m["genres"], str) for m in body["result"])


def test_genres_matches_part_of_a_genre_name(client: TestClient) -> None:
    result = client.get("/genres/sci").json()["result"]
    assert len(result) == 10 and all("Sci-Fi" in m["genres"] for m in result)
    assert client.get("/genres/COMEDY").json()["result"]
    assert client.get("/genres/nothing-like-this").json() == {"result": []}


def test_item_based_is_the_als_neighbours(client: TestClient) -> None:
    result = client.get("/item-based/1").json()["result"]
    assert len(result) == 10 and 1 not in {m["movieId"] for m in result}
    single = client.get("/movies/1/recommendations?strategy=collaborative&k=10").json()["items"]
    assert [m["movieId"] for m in result] == [i["movie_id"] for i in single]


def test_user_based_matches_the_new_endpoint(client: TestClient) -> None:
    result = client.get("/user-based/?params=1:4.5&params=2:5").json()["result"]
    new = client.post("/users/recommendations", json={"ratings": {"1": 4.5, "2": 5}, "k": 10}).json()["items"]
    assert [m["movieId"] for m in result] == [i["movie_id"] for i in new] and len(result) == 10
    assert all(set(m) == LEGACY_FIELDS for m in result)


@pytest.mark.parametrize(
    "query, status",
    [
        ("", 422),
        ("params=1", 422),
        ("params=1:x", 422),
        ("params=x:4", 422),
        ("params=1:9", 422),
        ("params=1:nan", 422),
        ("params=1:4&params=2:4&params=3:4&params=4:4&params=5:4", 413),
        ("params=999999:4", 404),
        ("params=" + "9" * 5000 + ":4", 422),
    ],
)
def test_user_based_errors(client: TestClient, query: str, status: int) -> None:
    assert client.get(f"/user-based/?{query}").status_code == status
