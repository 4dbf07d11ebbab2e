"""`POST /next`, `GET /users/{user_id}/next` and `/history` over the built sample."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.recommender.registry import strategy_names
from services.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(built_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(built_settings.updated(max_history=20))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def ratings(built_settings: Settings) -> pd.DataFrame:
    return pd.read_parquet(built_settings.ratings_path)


def test_next_never_returns_the_history_and_lists_unknown_ids(client: TestClient) -> None:
    history = [1, 3114, {"movie_id": 2355, "rating": 4.5, "at": "2026-12-01T20:00:00Z"}, 999_999_999]
    body = client.post("/next", json={"history": history, "k": 10}).json()
    assert body["strategy"] == "hybrid" and body["ignored"] == [999_999_999]
    ids = [i["movie_id"] for i in body["items"]]
    assert len(ids) == 10 == len(set(ids)) and not {1, 3114, 2355} & set(ids)
    assert all(i["because"] is None for i in body["items"])


def test_allow_seen_lets_the_history_come_back(client: TestClient) -> None:
    history = [3114, 1]  # Toy Story 2, then Toy Story: the series' next part is in the history
    kept = client.post("/next", json={"history": history, "k": 50, "strategy": "series"}).json()
    again = client.post("/next", json={"history": history, "k": 50, "strategy": "series", "allow_seen": True}).json()
    assert 3114 not in [i["movie_id"] for i in kept["items"]]
    assert 3114 in [i["movie_id"] for i in again["items"]]


def test_explain_names_the_history_movies_that_led_to_each_item(client: TestClient) -> None:
    body = client.post("/next", json={"history": [1, 3114], "k": 10, "explain": True}).json()
    assert all(set(i["because"]) <= {1, 3114} for i in body["items"])
    assert any(i["because"] for i in body["items"])


@pytest.mark.parametrize("strategy", strategy_names())
def test_every_strategy_answers_a_history(client: TestClient, strategy: str) -> None:
    response = client.post("/next", json={"history": [1, 2, 3], "k": 5, "strategy": strategy})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["strategy"] == strategy and len(body["items"]) == 5
    assert not {1, 2, 3} & {i["movie_id"] for i in body["items"]}


def test_an_empty_or_unknown_history_gets_recent_popular(client: TestClient) -> None:
    for history in ([], [999_999_998]):
        body = client.post("/next", json={"history": history, "k": 5}).json()
        assert body["strategy"] == "recent-popular" and len(body["items"]) == 5


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"history": list(range(1, 22))}, 413, "at most 20"),
        ({"history": [1], "strategy": "nope"}, 422, "Input should be"),
        ({"history": [1], "k": 0}, 422, "greater than or equal to 1"),
        ({"history": [{"movie_id": 1, "rating": 9}]}, 422, "less than or equal to 5"),
        ({"history": ["x"]}, 422, "history"),
        ({"history": [1], "surprise": 1}, 422, "Extra inputs"),
    ],
)
def test_bad_requests_get_clear_errors(client: TestClient, body: dict, status: int, text: str) -> None:
    response = client.post("/next", json=body)
    assert response.status_code == status and text in response.text


def test_a_movielens_user_is_answered_from_their_ratings(client: TestClient, ratings: pd.DataFrame) -> None:
    counts = ratings["userId"].value_counts()
    user = int(counts[counts <= 20].index[0])  # within the fixture's history limit, to compare with POST /next
    mine = ratings.loc[ratings["userId"] == user].sort_values(["timestamp", "movieId"], kind="stable")
    history = client.get(f"/users/{user}/history").json()
    assert history["user_id"] == str(user) and [i["movie_id"] for i in history["items"]] == mine["movieId"].tolist()
    body = client.get(f"/users/{user}/next", params={"k": 10}).json()
    assert len(body["items"]) == 10 and not set(mine["movieId"]) & {i["movie_id"] for i in body["items"]}
    posted = client.post("/next", json={"history": mine["movieId"].tolist(), "k": 10}).json()
    assert body["items"] == posted["items"]


def test_an_unknown_user_has_an_empty_history(client: TestClient) -> None:
    assert client.get("/users/u-42/history").json() == {"user_id": "u-42", "items": []}
    assert client.get("/users/u-42/next").json()["strategy"] == "recent-popular"
    assert client.get("/users/%20/next").status_code == 422
