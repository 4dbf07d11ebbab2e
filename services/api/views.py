"""Catalog rows -> response bodies (poster and IMDb URLs, the earlier service's record shape)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from services.api.schemas import LegacyMovie, Movie, RecommendedMovie
from services.recommender.base import Recommendation
from services.serving.recommend import Explanation


def poster_url(image_base: str, poster_path: str | None) -> str | None:
    """TMDB image base + poster_path (None without a poster)."""
    if not poster_path:
        return None
    return f"{image_base.rstrip('/')}/{poster_path.lstrip('/')}"


def imdb_url(imdb_id: str | None, scheme: str = "https") -> str | None:
    """The IMDb title page of an id like "tt0114709" (None without an id)."""
    if not imdb_id:
        return None
    return f"{scheme}://www.imdb.com/title/{imdb_id if imdb_id.startswith('tt') else 'tt' + imdb_id}/"


def movie(row: Mapping[str, Any], image_base: str, series_title: str | None = None) -> Movie:
    """A catalog row (with `series_title` / `series_inferred` when joined) as the API's Movie."""
    derived = ("genres", "adult", "series_title", "series_inferred", "poster_url", "imdb_url")
    fields = {k: row[k] for k in Movie.model_fields if k in row and k not in derived}
    series_id = row.get("series_id")
    inferred = row.get("series_inferred")
    return Movie(
        **fields,
        genres=[g for g in (row.get("genres") or "").split("|") if g],
        adult=row.get("adult") == "Y",
        series_title=row.get("series_title") or series_title,
        series_inferred=None if series_id is None or inferred is None else inferred == "Y",
        poster_url=poster_url(image_base, row.get("poster_path")),
        imdb_url=imdb_url(row.get("imdb_id")),
    )


def legacy_movie(row: Mapping[str, Any], image_base: str) -> LegacyMovie:
    """A catalog row in the earlier service's record shape."""
    imdb_id = row.get("imdb_id")
    return LegacyMovie(
        movieId=row["movie_id"],
        title=row["movie_title"],
        genres=row.get("genres") or "",
        imdbId=imdb_id[2:] if imdb_id and imdb_id.startswith("tt") else imdb_id,
        tmdbId=row.get("tmdb_id"),
        url=imdb_url(imdb_id, scheme="http"),
        rating_count=row.get("rating_count") or 0,
        rating_avg=row.get("rating_avg"),
        poster_path=poster_url(image_base, row.get("poster_path")),
    )


def recommended(
    recs: Sequence[Recommendation], titles: Mapping[int, str], why: Sequence[Explanation] | None = None
) -> list[RecommendedMovie]:
    """Recommendations with their titles, and their explanations when asked for."""
    return [
        RecommendedMovie(
            movie_id=r.movie_id,
            title=titles.get(r.movie_id, ""),
            score=r.score,
            source=r.source,
            contributions=why[i].contributions if why else None,
            viewers=why[i].viewers if why else None,
        )
        for i, r in enumerate(recs)
    ]


def release_order(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Oldest release first, undated movies last, ties by id (the same on every database)."""
    return sorted(rows, key=lambda r: (r.get("release_date") is None, r.get("release_date") or date.min, r["movie_id"]))
