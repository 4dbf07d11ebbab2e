"""Load MovieLens movies into the catalog, with rating statistics and inferred series."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from pipelines.catalog.series_inference import infer_series
from services.stores.catalog import Catalog, now


@dataclass(frozen=True)
class CatalogResult:
    movies: int
    new_movies: int
    inferred_series: int
    movies_in_inferred_series: int
    retired: int = 0  # catalog movies the release no longer has: hidden (useyn 'N'), their metadata kept


def _opt(value: Any) -> Any:
    """pandas missing values (NA, NaN) -> None."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def load_catalog(catalog: Catalog, movies: pd.DataFrame, ratings: pd.DataFrame) -> CatalogResult:
    """Upsert every movie (keeping richer metadata already there) and refresh inferred series, in one
    transaction: a load cut short leaves the catalog as it was.

    The catalog follows the release: movies it no longer has are hidden (useyn 'N', never recommended),
    and a hidden movie the release has again comes back with the metadata it had (TMDB text, series).
    """
    catalog.create_schema()
    with catalog.transaction():
        return _load(catalog, movies, ratings)


def _load(catalog: Catalog, movies: pd.DataFrame, ratings: pd.DataFrame) -> CatalogResult:
    stats = ratings.groupby("movieId")["rating"].agg(["size", "mean"])
    known = catalog.movie_ids()
    existing = set(known)
    in_release = {int(m) for m in movies["movieId"]}
    retired = [m for m, active in known.items() if active and m not in in_release]
    catalog.set_active(retired, False)
    catalog.set_active([m for m, active in known.items() if not active and m in in_release], True)
    stamp = now()
    new_rows, stat_rows = [], []
    for row in movies.itertuples(index=False):
        movie_id = int(row.movieId)
        count, mean = (
            (int(stats.at[movie_id, "size"]), float(stats.at[movie_id, "mean"]))
            if movie_id in stats.index
            else (0, None)
        )
        tmdb_id, imdb_id = _opt(row.tmdbId), _opt(row.imdbId)
        common = {
            "movie_id": movie_id,
            "genres": _opt(row.genres) or "",
            "tmdb_id": int(tmdb_id) if tmdb_id is not None else None,
            "imdb_id": imdb_id,
            "rating_count": count,
            "rating_avg": round(mean, 4) if mean is not None else None,
        }
        if movie_id in existing:
            stat_rows.append(common)
        else:
            year = _opt(row.year)
            new_rows.append(
                {
                    **common,
                    "movie_title": row.title,
                    "original_title": row.title,
                    "release_date": date(int(year), 1, 1) if year is not None else None,
                    "adult": "N",
                    "useyn": "Y",
                    "regtime": stamp,
                }
            )
    catalog.upsert_movies(new_rows)
    catalog.update_movies(stat_rows)
    series = refresh_inferred_series(catalog, movies)
    return CatalogResult(
        movies=len(movies),
        new_movies=len(new_rows),
        inferred_series=len(series),
        movies_in_inferred_series=sum(len(s.movie_ids) for s in series),
        retired=len(retired),
    )


def refresh_inferred_series(catalog: Catalog, movies: pd.DataFrame) -> list:
    """Infer series for movies without a real (TMDB) series; real series always win."""
    facts = catalog.movie_facts()
    with_real_series = {m for m, s in zip(facts.movie_ids, facts.series_ids) if s is not None and s > 0}
    candidates = movies.loc[~movies["movieId"].isin(with_real_series), ["movieId", "title", "year"]]
    series = infer_series(candidates)
    stamp = now()
    catalog.upsert_series(
        {"series_id": s.series_id, "series_title": s.title, "inferred": "Y", "useyn": "Y", "regtime": stamp}
        for s in series
    )
    assignment: dict[int, int | None] = {
        m: None for m, s in zip(facts.movie_ids, facts.series_ids) if s is not None and s < 0
    }
    for s in series:
        assignment.update({m: s.series_id for m in s.movie_ids})
    catalog.set_series(assignment)
    current = {s.series_id for s in series}
    catalog.delete_series([s for s in catalog.series_ids(inferred=True) if s not in current])
    return series
