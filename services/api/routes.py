"""HTTP routes: health, movie lookup and recommendations."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BeforeValidator

from services.api.schemas import ErrorBody, Health, Movie, RecommendedMovie, Recommendations
from services.recommender.strategies import STRATEGY_NAMES
from services.runtime import Runtime

# "series+vector" arrives as "series vector" when a client leaves the "+" unescaped
StrategyName = Annotated[
    Literal[STRATEGY_NAMES],  # type: ignore[valid-type]
    BeforeValidator(lambda v: v.replace(" ", "+") if isinstance(v, str) else v),
]

router = APIRouter()
NOT_FOUND = {404: {"model": ErrorBody, "description": "unknown movie"}}


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _movie_or_404(runtime: Runtime, movie_id: int) -> dict[str, Any]:
    row = runtime.catalog.get_movie(movie_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"movie {movie_id} not found")
    return row


@router.get("/health", response_model=Health, tags=["ops"])
def health() -> Health:
    """The process is alive."""
    return Health()


@router.get("/movies/{movie_id}", response_model=Movie, responses=NOT_FOUND, tags=["movies"])
def get_movie(request: Request, movie_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> Movie:
    """One catalogue movie."""
    row = _movie_or_404(_runtime(request), movie_id)
    return Movie(
        **{k: v for k, v in row.items() if k in Movie.model_fields and k not in ("genres", "adult", "series_inferred")},
        genres=[g for g in (row["genres"] or "").split("|") if g],
        adult=row["adult"] == "Y",
        series_inferred=None if row["series_id"] is None else row["series_inferred"] == "Y",
    )


@router.get(
    "/movies/{movie_id}/recommendations", response_model=Recommendations,
    responses={**NOT_FOUND, 503: {"model": ErrorBody, "description": "strategy unavailable"}},
    tags=["recommendations"],
)
def recommendations(
    request: Request,
    movie_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    strategy: Annotated[StrategyName, Query(description="which strategy ranks the movies")] = "hybrid",
    k: Annotated[int, Query(ge=1, le=100, description="how many movies")] = 10,
) -> Recommendations:
    """The movies a viewer is most likely to watch after `movie_id`."""
    runtime = _runtime(request)
    _movie_or_404(runtime, movie_id)
    chosen = runtime.strategies.get(strategy)
    if chosen is None:
        raise HTTPException(
            status_code=503,
            detail=f"strategy {strategy!r} is unavailable: missing {', '.join(runtime.missing)}",
        )
    recs = chosen.similar(movie_id, k)
    titles = runtime.catalog.titles([r.movie_id for r in recs])
    return Recommendations(
        movie_id=movie_id, strategy=strategy,
        items=[RecommendedMovie(movie_id=r.movie_id, title=titles.get(r.movie_id, ""), score=r.score,
                                source=r.source) for r in recs],
    )
