"""Item-to-item recommendation routes: one movie, or a batch of movies in one call."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BeforeValidator

from services.api import deps, views
from services.api.schemas import (
    BatchItem,
    BatchRecommendations,
    BatchRequest,
    ErrorBody,
    Recommendations,
    StrategyName,
)
from services.recommender.base import Recommendation
from services.recommender.filters import Filter
from services.serving.runtime import Runtime

router = APIRouter(tags=["recommendations"])
ERRORS = {
    404: {"model": ErrorBody, "description": "unknown movie"},
    503: {"model": ErrorBody, "description": "the strategy's store or model is unavailable"},
}

# "series+vector" arrives as "series vector" when a client leaves the "+" unescaped
Strategy = Annotated[
    StrategyName, BeforeValidator(lambda v: v.replace(" ", "+") if isinstance(v, str) else v),
    Query(description="which strategy ranks the movies"),
]


@router.get("/movies/{movie_id}/recommendations", response_model=Recommendations, responses=ERRORS)
def recommendations(
    request: Request, rt: deps.RuntimeDep,
    movie_id: Annotated[int, Path(ge=1, le=2**31 - 1, examples=[1])],
    strategy: Strategy = "hybrid",
    k: Annotated[int, Query(ge=1, description="how many movies, at most NEXTWATCH_MAX_K (default 100)")] = 10,
    exclude: Annotated[list[str], Query(description='movie ids never to recommend: "1,2" or repeated',
                                        examples=["3114,78499"])] = [],  # noqa: B006 - FastAPI copies it
    genre: Annotated[str | None, Query(max_length=100, description="only movies of this genre")] = None,
    include_adult: Annotated[bool, Query(description="also adult movies")] = False,
) -> Recommendations:
    """The movies a viewer is most likely to watch after `movie_id`.

    `hybrid` is the product default: the movie's series first, then overview-vector neighbours, then
    collaborative neighbours, then popular movies. It keeps answering when the vector store or the ALS
    model is down (`degraded: true`, `missing` names the part).
    """
    deps.check_at_most(("query", "k"), k, rt.settings.max_k, "k")
    rules = Filter.of(_exclude_ids(exclude, rt.settings.max_exclude), deps.known_genre(rt, ("query", "genre"), genre),
                      include_adult)
    deps.require_known(rt, [movie_id])
    recs, missing, titles = _serve(request, rt, strategy, [movie_id], k, rules)
    return Recommendations(movie_id=movie_id, strategy=strategy, degraded=bool(missing), missing=missing,
                           items=views.recommended(recs[0], titles))


@router.post(
    "/recommendations/batch", response_model=BatchRecommendations,
    responses={**ERRORS, **deps.UNREADABLE_BODY,
               413: {"model": ErrorBody, "description": "more ids than NEXTWATCH_MAX_BATCH"}},
)
def batch_recommendations(request: Request, rt: deps.RuntimeDep, body: BatchRequest) -> BatchRecommendations:
    """Recommendations for many movies in one call (a page of rows), answered in one batched pass."""
    deps.check_size(len(body.movie_ids), rt.settings.max_batch, "movie ids")
    deps.check_size(len(body.exclude), rt.settings.max_exclude, "excluded ids")
    deps.check_at_most(("body", "k"), body.k, rt.settings.max_k, "k")
    rules = Filter.of(body.exclude, deps.known_genre(rt, ("body", "genre"), body.genre), body.include_adult)
    deps.require_known(rt, body.movie_ids)
    recs, missing, titles = _serve(request, rt, body.strategy, body.movie_ids, body.k, rules)
    return BatchRecommendations(
        strategy=body.strategy, degraded=bool(missing), missing=missing,
        results=[BatchItem(movie_id=m, items=views.recommended(r, titles)) for m, r in zip(body.movie_ids, recs)],
    )


def _serve(
    request: Request, rt: Runtime, strategy: str, movie_ids: Sequence[int], k: int, rules: Filter
) -> tuple[list[list[Recommendation]], list[str], dict[int, str]]:
    """Run a strategy for the movies; (recommendations, missing parts, titles of what was recommended)."""
    request.state.strategy = strategy
    chosen = rt.strategies.get(strategy)
    if chosen is None:
        raise HTTPException(status_code=503,
                            detail=f"strategy {strategy!r} is unavailable: missing {', '.join(rt.missing)}")
    result = chosen.recommend_batch(movie_ids, k, filter=rules)
    missing = views.parts(result.missing)
    if missing:
        request.app.state.metrics.count_degraded(strategy, missing)
    return result.items, missing, deps.titles(request, [r.movie_id for recs in result.items for r in recs])


def _exclude_ids(raw: Sequence[str], limit: int) -> list[int]:
    """Movie ids from "1,2" and/or repeated parameters; 422 for anything else or too many."""
    ids: list[int] = []
    for part in (p.strip() for value in raw for p in value.split(",")):
        if not part:
            continue
        if not (part.isascii() and part.isdigit() and len(part) <= 10 and 1 <= int(part) <= 2**31 - 1):
            raise deps.invalid(("query", "exclude"), "exclude takes movie ids (positive integers), "
                               'comma-separated: "1,2"', part)
        ids.append(int(part))
    deps.check_at_most(("query", "exclude"), len(ids), limit, "the number of excluded ids")
    return ids
