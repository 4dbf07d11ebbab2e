"""Request and response bodies of the HTTP API (with the examples the OpenAPI document shows)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict
from pydantic.config import JsonDict

from services.recommender.registry import parts, strategy_names


def _digits(value: object) -> object:
    """Text of ASCII digits as its number (int() would also take "１", "1_0" and " 1"); anything else as is."""
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10 else value


# a JSON number (not true, 1.0 or "1"); written as text (a query value, a JSON object's key): ASCII digits only
MovieId = Annotated[int, Strict(), Field(ge=1, le=2**31 - 1, description="MovieLens movieId")]
MovieIdText = Annotated[MovieId, BeforeValidator(_digits)]
Rating = Annotated[
    float, Strict(), Field(ge=0.5, le=5.0, allow_inf_nan=False, description="MovieLens stars, 0.5 to 5.0")
]
Count = Annotated[int, Strict()]  # a JSON number, not true or 1.0


def _one_of(names: Callable[[], tuple[str, ...]]) -> Callable[[JsonDict], None]:
    """An OpenAPI enum listing the registry's names when the schema is generated."""
    return lambda schema: schema.update(enum=list(names()))


def _known_strategy(name: str) -> str:
    if name not in strategy_names():
        raise ValueError(f"Input should be one of {', '.join(strategy_names())}")
    return name


# names the source registry declares (checked per request, so a source registered at start is served)
StrategyName = Annotated[str, AfterValidator(_known_strategy), Field(json_schema_extra=_one_of(strategy_names))]
Part = Annotated[str, Field(json_schema_extra=_one_of(parts))]

_TOY_STORY: JsonDict = {
    "movie_id": 1,
    "movie_title": "토이 스토리",
    "original_title": "Toy Story",
    "original_language": "en",
    "overview": "장난감들이 살아 움직이는 세계...",
    "tagline": None,
    "genres": ["Adventure", "Animation"],
    "release_date": "1995-10-30",
    "runtime": 81,
    "series_id": 10194,
    "series_title": "토이 스토리 시리즈",
    "series_inferred": False,
    "poster_path": "/uXDfjJbdP4ijW5hWSBrPrlKpxab.jpg",
    "poster_url": "https://image.tmdb.org/t/p/w500/uXDfjJbdP4ijW5hWSBrPrlKpxab.jpg",
    "imdb_id": "tt0114709",
    "imdb_url": "https://www.imdb.com/title/tt0114709/",
    "tmdb_id": 862,
    "adult": False,
    "rating_count": 76813,
    "rating_avg": 3.9,
}
_ITEM: JsonDict = {"movie_id": 3114, "title": "토이 스토리 2", "score": 1.0, "source": "series"}


class ErrorBody(BaseModel):
    detail: str = Field(description="what went wrong, in words")

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "movie 999999 not found"}]})


class Health(BaseModel):
    status: str = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    parts: dict[str, str] = Field(
        description='each part: "ok", "missing", why it is not reachable, or "damaged ..." (an artifact that '
        "failed its checksum)"
    )
    missing: list[str] = Field(default_factory=list, description="the parts that are not ok")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "parts": {
                        "catalog": "ok",
                        "vectors": "ok",
                        "collaborative": "ok",
                        "sequential": "ok",
                        "learned": "ok",
                    },
                    "missing": [],
                },
            ]
        }
    )


class Movie(BaseModel):
    movie_id: int
    movie_title: str = Field(description="Korean title when TMDB has one")
    original_title: str | None = None
    original_language: str | None = None
    overview: str | None = None
    tagline: str | None = None
    genres: list[str] = Field(default_factory=list)
    release_date: date | None = None
    runtime: int | None = None
    series_id: int | None = Field(default=None, description="negative: a series inferred from titles")
    series_title: str | None = None
    series_inferred: bool | None = None
    poster_path: str | None = None
    poster_url: str | None = Field(default=None, description="TMDB image base + poster_path")
    imdb_id: str | None = None
    imdb_url: str | None = None
    tmdb_id: int | None = None
    adult: bool = False
    rating_count: int = 0
    rating_avg: float | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [_TOY_STORY]})


class MovieList(BaseModel):
    items: list[Movie]

    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [_TOY_STORY]}]})


class Series(BaseModel):
    series_id: int
    series_title: str
    inferred: bool = Field(description="grouped from MovieLens titles rather than a TMDB collection")
    movies: list[Movie] = Field(description="oldest release first")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"series_id": 10194, "series_title": "토이 스토리 시리즈", "inferred": False, "movies": [_TOY_STORY]},
            ]
        }
    )


class RecommendedMovie(BaseModel):
    movie_id: int
    title: str
    score: float = Field(description="the source's score, higher is better (not comparable across sources)")
    source: str = Field(
        description="series | vector | collaborative | sequential | recent-popular | popular | "
        "random; for hybrid, the source that contributed most"
    )
    contributions: dict[str, float] | None = Field(
        default=None,
        description="with explain=true: each source's part of the item's score (hybrid: of the "
        "fused score; empty for a popular fill-in)",
    )
    viewers: int | None = Field(
        default=None,
        description="with explain=true: how many viewers of the movie watched this one within "
        "their next few titles (the sequential model's count), when it knows the pair",
    )


Degraded = Annotated[bool, Field(description="true when a part of the stack was missing or failed")]
Missing = Annotated[list[Part], Field(description="the parts the answer was given without")]


class Recommendations(BaseModel):
    movie_id: int
    strategy: str
    degraded: Degraded = False
    missing: Missing = []
    items: list[RecommendedMovie]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"movie_id": 1, "strategy": "hybrid", "degraded": False, "missing": [], "items": [_ITEM]},
                {
                    "movie_id": 1,
                    "strategy": "hybrid",
                    "degraded": True,
                    "missing": ["vectors"],
                    "items": [
                        _ITEM,
                        {"movie_id": 2355, "title": "벅스 라이프", "score": 0.83, "source": "collaborative"},
                    ],
                },
            ]
        }
    )


class BatchRequest(BaseModel):
    movie_ids: list[MovieId] = Field(min_length=1, description="at most NEXTWATCH_MAX_BATCH ids (default 100)")
    strategy: StrategyName = "hybrid"
    k: Count = Field(default=10, ge=1, description="per movie, at most NEXTWATCH_MAX_K (default 100)")
    exclude: list[MovieId] = Field(default_factory=list, description="never recommend these")
    genre: str | None = Field(default=None, max_length=100, description="only movies of this genre")
    include_adult: bool = False
    explain: bool = Field(default=False, description="add each item's contributions and viewers")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"movie_ids": [1, 260, 2571], "strategy": "hybrid", "k": 5, "exclude": [3114], "include_adult": False},
            ]
        },
    )


class BatchItem(BaseModel):
    movie_id: int
    items: list[RecommendedMovie]


class BatchRecommendations(BaseModel):
    strategy: str
    degraded: Degraded = False
    missing: Missing = []
    results: list[BatchItem] = Field(description="one per requested id, in the order asked")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "strategy": "hybrid",
                    "degraded": False,
                    "missing": [],
                    "results": [{"movie_id": 1, "items": [_ITEM]}],
                },
            ]
        }
    )


class UserRatings(BaseModel):
    ratings: dict[MovieIdText, Rating] = Field(
        min_length=1, description="movieId -> stars; at most NEXTWATCH_MAX_USER_RATINGS (default 1000)"
    )
    k: Count = Field(default=10, ge=1, description="at most NEXTWATCH_MAX_K (default 100)")
    explain: bool = Field(default=False, description="list which rated movies contributed to each item")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"ratings": {"1": 5.0, "3114": 4.5, "2355": 2.0}, "k": 10, "explain": True},
            ]
        },
    )


class Contribution(BaseModel):
    movie_id: int = Field(description="one of the rated movies")
    title: str
    contribution: float = Field(description="its share of the item's score")


class UserRecommendedMovie(RecommendedMovie):
    because: list[Contribution] | None = Field(default=None, description="with explain: largest share first")


class UserRecommendations(BaseModel):
    degraded: Degraded = False
    missing: Missing = []
    items: list[UserRecommendedMovie]
    used: list[int] = Field(description="rated movies the model counted as liked")
    ignored: list[int] = Field(
        description="rated movies the model does not know or that are rated below its like threshold "
        "(still never recommended)"
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "degraded": False,
                    "missing": [],
                    "used": [1, 3114],
                    "ignored": [2355],
                    "items": [
                        {
                            "movie_id": 78499,
                            "title": "토이 스토리 3",
                            "score": 0.91,
                            "source": "collaborative",
                            "because": [
                                {"movie_id": 3114, "title": "토이 스토리 2", "contribution": 0.55},
                                {"movie_id": 1, "title": "토이 스토리", "contribution": 0.36},
                            ],
                        }
                    ],
                }
            ]
        }
    )


class LegacyMovie(BaseModel):
    """A movie record as the earlier service (seed 000's movies_final.csv rows) returned it."""

    movieId: int
    title: str
    genres: str = Field(description='pipe-separated, e.g. "Adventure|Animation"')
    imdbId: str | None = Field(default=None, description='digits without "tt"')
    tmdbId: int | None = None
    url: str | None = Field(default=None, description="IMDb page")
    rating_count: int = 0
    rating_avg: float | None = None
    poster_path: str | None = Field(default=None, description="full poster URL")


class LegacyResult(BaseModel):
    result: list[LegacyMovie]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "result": [
                        {
                            "movieId": 1,
                            "title": "토이 스토리",
                            "genres": "Adventure|Animation",
                            "imdbId": "0114709",
                            "tmdbId": 862,
                            "url": "http://www.imdb.com/title/tt0114709/",
                            "rating_count": 76813,
                            "rating_avg": 3.9,
                            "poster_path": "https://image.tmdb.org/t/p/w500/uXDfjJbdP4ijW5hWSBrPrlKpxab.jpg",
                        }
                    ]
                }
            ]
        }
    )
