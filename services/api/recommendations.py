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
from services.recommender.filters import Filter
from services.serving.guards import on_the_loop_unless_blocking
from services.serving.recommend import Explanation, Served, StrategyUnavailable, recommend
from services.serving.runtime import Runtime

router = APIRouter(tags=["recommendations"])
ERRORS: deps.Responses = {
    404: {"model": ErrorBody, "description": "unknown movie"},
    503: {"model": ErrorBody, "description": "the strategy's store or model is unavailable"},
}

# "series+vector" arrives as "series vector" when a client leaves the "+" unescaped
Strategy = Annotated[
    StrategyName,
    BeforeValidator(lambda v: v.replace(" ", "+") if isinstance(v, str) else v),
    Query(description="which strategy ranks the movies"),
]


@router.get("/movies/{movie_id}/recommendations", response_model=Recommendations, responses=ERRORS)
async def recommendations(
    request: Request,
    rt: deps.RuntimeDep,
    movie_id: Annotated[int, Path(ge=1, le=2**31 - 1, examples=[1])],
    strategy: Strategy = "hybrid",
    k: Annotated[int, Query(ge=1, description="how many movies, at most NEXTWATCH_MAX_K (default 100)")] = 10,
    exclude: Annotated[
        list[str], Query(description='movie ids never to recommend: "1,2" or repeated', examples=["3114,78499"])
    ] = [],  # noqa: B006 - FastAPI copies it
    genre: Annotated[str | None, Query(max_length=100, description="only movies of this genre")] = None,
    include_adult: Annotated[bool, Query(description="also adult movies")] = False,
    explain: Annotated[bool, Query(description="add each item's contributions and viewers")] = False,
) -> Recommendations:
    """The movies a viewer is most likely to watch after `movie_id`.

    `hybrid` is the product default: a weighted fusion of what viewers watched next (sequential),
    collaborative neighbours, the movie's series, overview-vector neighbours and recent popularity, with
    weights chosen on a validation window; popular movies fill the list. It keeps answering when the vector
    store, the ALS model or the sequential model is down (`degraded: true`, `missing` names the part).
    With `explain=true` each item says how much each source contributed and, where known, how many viewers
    of the movie watched it within their next titles.
    """
    deps.check_at_most(("query", "k"), k, rt.settings.api.max_k, "k")
    rules = Filter.of(
        _exclude_ids(exclude, rt.settings.api.max_exclude),
        deps.known_genre(rt, ("query", "genre"), genre),
        include_adult,
    )
    deps.require_known(rt, [movie_id])
    # one movie's answer is a few table reads: no thread hop, unless a store must be asked
    served, titles = await on_the_loop_unless_blocking(
        lambda: _serve(request, rt, strategy, [movie_id], k, rules, explain)
    )
    _note(request, strategy, served)
    return Recommendations(
        movie_id=movie_id,
        strategy=strategy,
        degraded=bool(served.missing),
        missing=served.missing,
        items=views.recommended(served.items[0], titles, _why(served, 0)),
    )


@router.post(
    "/recommendations/batch",
    response_model=BatchRecommendations,
    responses={
        **ERRORS,
        **deps.UNREADABLE_BODY,
        413: {"model": ErrorBody, "description": "more ids than NEXTWATCH_MAX_BATCH"},
    },
)
def batch_recommendations(request: Request, rt: deps.RuntimeDep, body: BatchRequest) -> BatchRecommendations:
    """Recommendations for many movies in one call (a page of rows), answered in one batched pass."""
    deps.check_size(len(body.movie_ids), rt.settings.api.max_batch, "movie ids")
    deps.check_size(len(body.exclude), rt.settings.api.max_exclude, "excluded ids")
    deps.check_at_most(("body", "k"), body.k, rt.settings.api.max_k, "k")
    rules = Filter.of(body.exclude, deps.known_genre(rt, ("body", "genre"), body.genre), body.include_adult)
    deps.require_known(rt, body.movie_ids)
    served, titles = _serve(request, rt, body.strategy, body.movie_ids, body.k, rules, body.explain)
    _note(request, body.strategy, served)
    return BatchRecommendations(
        strategy=body.strategy,
        degraded=bool(served.missing),
        missing=served.missing,
        results=[
            BatchItem(movie_id=m, items=views.recommended(r, titles, _why(served, i)))
            for i, (m, r) in enumerate(zip(body.movie_ids, served.items))
        ],
    )


def _serve(
    request: Request, rt: Runtime, strategy: str, movie_ids: Sequence[int], k: int, rules: Filter, explain: bool
) -> tuple[Served, dict[int, str]]:
    """Run a strategy for the movies; what it served and the titles of what it recommended."""
    try:
        served = recommend(rt, strategy, list(movie_ids), k, rules, explain=explain)
    except StrategyUnavailable as exc:
        request.state.strategy = strategy
        raise HTTPException(status_code=503, detail=str(exc)) from None
    return served, deps.titles(request, [r.movie_id for recs in served.items for r in recs])


def _note(request: Request, strategy: str, served: Served) -> None:
    """The strategy for the access log, and a degraded answer for the metrics."""
    request.state.strategy = strategy
    if served.missing:
        request.app.state.metrics.count_degraded(strategy, served.missing)


def _why(served: Served, position: int) -> list[Explanation] | None:
    return served.explanations[position] if served.explanations is not None else None


def _exclude_ids(raw: Sequence[str], limit: int) -> list[int]:
    """Movie ids from "1,2" and/or repeated parameters; 422 for anything else or too many."""
    ids: list[int] = []
    for part in (p.strip() for value in raw for p in value.split(",")):
        if not part:
            continue
        if not (part.isascii() and part.isdigit() and len(part) <= 10 and 1 <= int(part) <= 2**31 - 1):
            raise deps.invalid(
                ("query", "exclude"), 'exclude takes movie ids (positive integers), comma-separated: "1,2"', part
            )
        ids.append(int(part))
    deps.check_at_most(("query", "exclude"), len(ids), limit, "the number of excluded ids")
    return ids
