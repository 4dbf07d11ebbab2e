"""PostgreSQL, executed: a throwaway server from the installed binaries, the real pipeline steps and
the API against it (Korean text, idempotent re-runs, batched upserts)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from pipelines import steps
from pipelines.steps import catalog_step, embed_step
from services.api.app import create_app
from services.serving.guards import StoreUnavailable
from services.settings import Settings
from services.stores.catalog import Catalog
from tests.support.data import write_release

TOY_STORY = "토이 스토리"
TOY_STORY_OVERVIEW = "카우보이 인형 우디는 꼬마 주인인 앤디의 가장 사랑받는 장난감이다."


@pytest.fixture(scope="module")
def tiny_release(sample: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GroupLens-format release of the sample's 60 most-rated movies plus the Toy Story and Godfather series."""
    return write_release(sample, tmp_path_factory.mktemp("ml-tiny"), 60)


@pytest.fixture(scope="module")
def pg_settings(postgres_url: str, tiny_release: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The whole offline build with the catalog in PostgreSQL."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("pg-data"),
        source=str(tiny_release),
        database_url=postgres_url,
        als_factors=8,
        als_iterations=3,
    )
    steps.build(settings, progress=False)
    return settings


@pytest.fixture
def catalog(pg_settings: Settings) -> Iterator[Catalog]:
    cat = Catalog(pg_settings.catalog_url)
    yield cat
    cat.close()


def _table(catalog: Catalog, name: str) -> list[tuple]:
    with catalog.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {name} ORDER BY 1"))]


def test_the_pipeline_builds_the_catalog_in_postgres(pg_settings: Settings, catalog: Catalog) -> None:
    assert catalog.engine.dialect.name == "postgresql"
    movies = pd.read_parquet(pg_settings.movies_path)
    assert catalog.count_movies() == len(movies) > 60
    toy_story = catalog.get_movie(1)
    assert toy_story["movie_title"] == "Toy Story" and toy_story["series_inferred"] == "Y"
    assert {m["movie_title"] for m in catalog.series_members(toy_story["series_id"])} >= {"Toy Story 2"}


def test_korean_text_round_trips_through_the_api(pg_settings: Settings, catalog: Catalog) -> None:
    catalog.update_movies([{"movie_id": 1, "movie_title": TOY_STORY, "overview": TOY_STORY_OVERVIEW}])
    with TestClient(create_app(pg_settings)) as client:
        movie = client.get("/movies/1").json()
        assert (movie["movie_title"], movie["overview"]) == (TOY_STORY, TOY_STORY_OVERVIEW)
        items = client.get("/movies/3114/recommendations", params={"strategy": "series", "k": 5}).json()  # Toy Story 2
        assert TOY_STORY in [i["title"] for i in items["items"]]


def test_the_api_serves_every_strategy_from_postgres(pg_settings: Settings) -> None:
    with TestClient(create_app(pg_settings)) as client:
        assert client.get("/health").json() == {"status": "ok"}
        for strategy in ("hybrid", "series", "vector", "collaborative", "popular"):
            response = client.get("/movies/1/recommendations", params={"strategy": strategy, "k": 10})
            assert response.status_code == 200, response.text
            ids = [i["movie_id"] for i in response.json()["items"]]
            assert len(ids) == len(set(ids)) == 10 and 1 not in ids


def test_a_nul_is_422_and_a_database_error_a_plain_503_logged_in_one_line(
    pg_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with TestClient(create_app(pg_settings.updated(access_log=False))) as client:
        for params in ({"q": "\x00"}, {"q": "toy\x00"}, {"genre": "\x00"}):
            response = client.get("/movies", params=params)
            assert response.status_code == 422, response.text
            assert "SQL" not in response.text and "sqlalche.me" not in response.text
        # what PostgreSQL itself says of a NUL, had one reached it: the answer names the part and the error
        # type; the statement, its parameters and the link are in one log line, without a traceback
        rt = client.app.state.runtime
        with pytest.raises(StoreUnavailable) as failed:
            rt.guards["catalog"].call(rt.catalog.search_movies, "\x00", None, limit=5, include_adult=False)
    assert str(failed.value).startswith("catalog unavailable: ") and "SELECT" not in str(failed.value)
    [logged] = [r for r in caplog.records if r.name == "services.serving.guards"]
    assert logged.exc_info is None and "\n" not in logged.getMessage()


def test_rerunning_the_pipeline_changes_nothing(pg_settings: Settings, catalog: Catalog) -> None:
    movies_before, series_before = _table(catalog, "movie"), _table(catalog, "series")
    catalog_step(pg_settings, force=True)
    assert catalog_step(pg_settings) is None  # up to date
    embed_step(pg_settings, progress=False)
    movies_after = _table(catalog, "movie")
    assert movies_after == movies_before  # no duplicates, no changed rows (Korean title kept)
    assert [s[:3] for s in _table(catalog, "series")] == [s[:3] for s in series_before]  # regtime is refreshed
    with catalog.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(DISTINCT movie_id) = count(*) FROM movie"))


def test_batched_upserts_insert_update_and_leave_other_columns(catalog: Catalog) -> None:
    stamp = datetime(2026, 1, 1, 12)
    rows = [
        {
            "movie_id": 900_000 + i,
            "movie_title": f"영화 {i}",
            "overview": "줄거리",
            "adult": "N",
            "useyn": "Y",
            "regtime": stamp,
        }
        for i in range(2500)
    ]  # more than one executemany batch
    assert catalog.upsert_movies(rows) == 2500
    assert catalog.upsert_movies([{"movie_id": 900_001, "movie_title": "영화 하나", "regtime": stamp}]) == 1
    catalog.update_movies([{"movie_id": 900_002, "rating_count": 42}])
    one, two = catalog.get_movies([900_001, 900_002])
    assert (one["movie_title"], one["overview"]) == ("영화 하나", "줄거리")
    assert (two["movie_title"], two["rating_count"]) == ("영화 2", 42)
    with catalog.engine.begin() as conn:
        assert conn.scalar(text("SELECT count(*) FROM movie WHERE movie_id >= 900000")) == 2500
        conn.execute(text("DELETE FROM movie WHERE movie_id >= 900000"))
