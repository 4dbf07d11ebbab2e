"""Response bodies of the HTTP API."""
from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str = "ok"


class Movie(BaseModel):
    movie_id: int
    movie_title: str
    original_title: str | None = None
    original_language: str | None = None
    overview: str | None = None
    tagline: str | None = None
    genres: list[str] = Field(default_factory=list)
    release_date: date | None = None
    runtime: int | None = None
    series_id: int | None = None
    series_title: str | None = None
    series_inferred: bool | None = None
    poster_path: str | None = None
    imdb_id: str | None = None
    tmdb_id: int | None = None
    adult: bool = False
    rating_count: int = 0
    rating_avg: float | None = None


class RecommendedMovie(BaseModel):
    movie_id: int
    title: str
    score: float
    source: str = Field(description="series | vector | collaborative | popular | random")


class Recommendations(BaseModel):
    movie_id: int
    strategy: str
    items: list[RecommendedMovie]

    model_config = {
        "json_schema_extra": {
            "examples": [{
                "movie_id": 1, "strategy": "hybrid",
                "items": [{"movie_id": 3114, "title": "Toy Story 2", "score": 1.0, "source": "series"}],
            }]
        }
    }


class ErrorBody(BaseModel):
    detail: str
