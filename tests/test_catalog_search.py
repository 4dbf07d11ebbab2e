"""Catalog search (title substring, genre), series lookup and ping on SQLite and PostgreSQL, in Korean."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from services.stores.catalog import Catalog
from tests.support.postgres import server_bin_dir, temporary_postgres

STAMP = datetime(2026, 1, 1, 12, 0, 0)
MOVIES = [
    (1, "토이 스토리", "Toy Story", "Adventure|Animation|Children", "N", 100, 7),
    (2, "토이 스토리 2", "Toy Story 2", "Adventure|Animation", "N", 80, 7),
    (3, "대부", "The Godfather", "Crime|Drama", "N", 90, None),
    (4, "100% 사랑_이야기", "100% Love_Story", "Romance", "N", 5, None),
    (5, "성인 영화", "Adult Story", "Drama|Romance", "Y", 50, None),
    (6, "숨겨진 영화", "Hidden", "Drama", "N", 500, None),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    if request.param == "sqlite":
        url_context = None
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('search')) / 'catalog.sqlite'}"
    else:
        bin_dir = server_bin_dir()
        if bin_dir is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        url_context = temporary_postgres(bin_dir)
        url = url_context.__enter__()
    cat = Catalog(url)
    try:
        cat.create_schema()
        cat.upsert_series(
            [{"series_id": 7, "series_title": "토이 스토리 시리즈", "inferred": "N", "useyn": "Y", "regtime": STAMP}]
        )
        cat.upsert_movies(
            [
                {
                    "movie_id": m,
                    "movie_title": title,
                    "original_title": original,
                    "genres": genres,
                    "adult": adult,
                    "rating_count": count,
                    "series_id": series,
                    "useyn": "N" if m == 6 else "Y",
                    "regtime": STAMP,
                }
                for m, title, original, genres, adult, count, series in MOVIES
            ]
        )
        yield cat
    finally:
        cat.close()
        if url_context is not None:
            url_context.__exit__(None, None, None)


def ids(rows: list[dict]) -> list[int]:
    return [r["movie_id"] for r in rows]


def test_korean_and_original_titles_case_insensitive(catalog: Catalog) -> None:
    assert ids(catalog.search_movies("스토리")) == [1, 2]  # most rated first
    assert ids(catalog.search_movies("toy STORY 2")) == [2]
    assert ids(catalog.search_movies("GODFATHER")) == [3]
    assert catalog.search_movies("토이")[0]["series_title"] == "토이 스토리 시리즈"


def test_like_wildcards_are_literal(catalog: Catalog) -> None:
    assert ids(catalog.search_movies("100%")) == [4]
    assert ids(catalog.search_movies("%")) == [4]
    assert ids(catalog.search_movies("_")) == [4]
    assert ids(catalog.search_movies("사랑_이")) == [4]


def test_genre_is_one_whole_genre_name(catalog: Catalog) -> None:
    assert ids(catalog.search_movies(genre="drama")) == [3, 5]  # inactive movie 6 never shows
    assert ids(catalog.search_movies(genre="drama", include_adult=False)) == [3]
    assert catalog.search_movies(genre="Dram") == []
    assert ids(catalog.search_movies("story", genre="romance", limit=1)) == [5]


def test_series_and_ping(catalog: Catalog) -> None:
    assert catalog.get_series(7)["series_title"] == "토이 스토리 시리즈"
    assert catalog.get_series(8) is None
    catalog.ping()
