"""The SQL catalog: schema, idempotent upserts, Korean text, series lookups."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.exc import IntegrityError

from pipelines.catalog.load import load_catalog
from services.stores.catalog import Catalog

STAMP = datetime(2026, 1, 1, 12, 0, 0)


def _movie(movie_id: int, title: str, **extra: object) -> dict:
    return {"movie_id": movie_id, "movie_title": title, "adult": "N", "useyn": "Y", "regtime": STAMP, **extra}


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    cat.create_schema()
    yield cat
    cat.close()


def test_upsert_is_idempotent_and_updates(catalog: Catalog) -> None:
    rows = [_movie(1, "Toy Story"), _movie(2, "Jumanji")]
    catalog.upsert_movies(rows)
    catalog.upsert_movies(rows)
    assert catalog.count_movies() == 2
    catalog.update_movies([{"movie_id": 1, "rating_count": 7}])
    movie = catalog.get_movie(1)
    assert movie["movie_title"] == "Toy Story" and movie["rating_count"] == 7


def test_upsert_leaves_columns_the_rows_do_not_name(catalog: Catalog) -> None:
    catalog.upsert_movies([_movie(1, "Toy Story", overview="Woody", rating_count=3)])
    catalog.upsert_movies([_movie(1, "Toy Story (1995)")])
    movie = catalog.get_movie(1)
    assert (movie["movie_title"], movie["overview"], movie["rating_count"]) == ("Toy Story (1995)", "Woody", 3)


def test_korean_text_round_trips(catalog: Catalog) -> None:
    overview = "카우보이 인형 우디는 꼬마 주인인 앤디의 가장 사랑받는 장난감이다."
    catalog.upsert_series([{"series_id": 10194, "series_title": "토이 스토리 시리즈", "regtime": STAMP}])
    catalog.upsert_movies(
        [_movie(1, "토이 스토리", overview=overview, tagline="장난감과 좋은 친구가 되자", series_id=10194)]
    )
    movie = catalog.get_movie(1)
    assert movie["movie_title"] == "토이 스토리"
    assert movie["overview"] == overview
    assert movie["series_title"] == "토이 스토리 시리즈"
    assert catalog.titles([1]) == {1: "토이 스토리"}


def test_get_movies_keeps_requested_order_and_skips_unknown(catalog: Catalog) -> None:
    catalog.upsert_movies([_movie(i, f"m{i}") for i in range(1, 6)])
    assert [m["movie_id"] for m in catalog.get_movies([5, 99, 2, 5])] == [5, 2, 5]
    assert catalog.get_movie(99) is None


def test_series_members_newest_first(catalog: Catalog) -> None:
    catalog.upsert_series([{"series_id": 1, "series_title": "Toy Story", "regtime": STAMP}])
    catalog.upsert_movies(
        [
            _movie(1, "Toy Story", series_id=1, release_date=date(1995, 10, 30)),
            _movie(3114, "Toy Story 2", series_id=1, release_date=date(1999, 10, 30)),
            _movie(78499, "Toy Story 3", series_id=1, release_date=date(2010, 6, 16)),
        ]
    )
    assert [m["movie_id"] for m in catalog.series_members(1)] == [78499, 3114, 1]


def test_unknown_series_is_rejected_by_the_foreign_key(catalog: Catalog) -> None:
    with pytest.raises(IntegrityError):
        catalog.upsert_movies([_movie(1, "x", series_id=12345)])
    assert catalog.count_movies() == 0


def test_load_catalog_twice_gives_the_same_rows(tmp_path: Path) -> None:
    movies = pd.DataFrame(
        {
            "movieId": [1, 3114, 78499, 2],
            "title": ["Toy Story", "Toy Story 2", "Toy Story 3", "Jumanji"],
            "year": pd.array([1995, 1999, 2010, 1995], dtype="Int16"),
            "genres": ["Animation"] * 4,
            "tmdbId": pd.array([862, 863, 10193, None], dtype="Int64"),
            "imdbId": ["tt0114709", None, None, None],
        }
    )
    ratings = pd.DataFrame({"movieId": [1, 1, 2], "rating": [4.0, 5.0, 3.0]})
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    first = load_catalog(catalog, movies, ratings)
    snapshot = catalog.get_movies([1, 2, 3114, 78499])
    second = load_catalog(catalog, movies, ratings)
    assert catalog.get_movies([1, 2, 3114, 78499]) == snapshot
    assert first.inferred_series == second.inferred_series == 1
    toy = catalog.get_movie(1)
    assert toy["rating_count"] == 2 and toy["rating_avg"] == 4.5 and toy["series_inferred"] == "Y"
    assert toy["tmdb_id"] == 862 and toy["imdb_id"] == "tt0114709"
    assert catalog.get_movie(2)["series_id"] is None
    catalog.close()


def test_real_series_beats_inferred(tmp_path: Path) -> None:
    movies = pd.DataFrame(
        {
            "movieId": [1, 3114],
            "title": ["Toy Story", "Toy Story 2"],
            "year": pd.array([1995, 1999], dtype="Int16"),
            "genres": ["", ""],
            "tmdbId": pd.array([None, None], dtype="Int64"),
            "imdbId": [None, None],
        }
    )
    ratings = pd.DataFrame({"movieId": [1], "rating": [4.0]})
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    load_catalog(catalog, movies, ratings)
    catalog.upsert_series(
        [{"series_id": 10194, "series_title": "토이 스토리 시리즈", "inferred": "N", "regtime": STAMP}]
    )
    catalog.set_series({1: 10194, 3114: 10194})
    load_catalog(catalog, movies, ratings)
    assert catalog.get_movie(1)["series_id"] == 10194
    assert catalog.series_ids(inferred=True) == []
    catalog.close()


def test_a_transaction_is_all_or_nothing(tmp_path) -> None:
    """Writes inside `transaction()` join one transaction: reads inside see them, an error undoes them all."""
    from services.stores.catalog import now

    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.create_schema()
    row = {"movie_id": 1, "movie_title": "A", "adult": "N", "useyn": "Y", "regtime": now()}
    try:
        with pytest.raises(RuntimeError, match="cut short"), catalog.transaction():
            catalog.upsert_movies([row])
            catalog.update_movies([{"movie_id": 1, "rating_count": 3}])
            assert catalog.count_movies() == 1
            raise RuntimeError("cut short")
        assert catalog.count_movies() == 0
        with catalog.transaction():
            catalog.upsert_movies([row])
        assert catalog.count_movies() == 1
    finally:
        catalog.close()
