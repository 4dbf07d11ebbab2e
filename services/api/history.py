"""What to watch next after a viewer's history (`POST /next`)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from services.api import deps
from services.api.history_schemas import NextAnswer, NextMovie, NextRequest
from services.api.schemas import ErrorBody
from services.recommender.filters import Filter
from services.serving.guards import on_the_loop_unless_blocking
from services.serving.next import NextServed, recommend_next
from services.serving.recommend import StrategyUnavailable

router = APIRouter(tags=["recommendations"])


@router.post(
    "/next",
    response_model=NextAnswer,
    responses={
        **deps.UNREADABLE_BODY,
        413: {"model": ErrorBody, "description": "a longer history than NEXTWATCH_MAX_HISTORY"},
        503: {"model": ErrorBody, "description": "the strategy's store or model is unavailable"},
    },
)
async def next_movies(request: Request, rt: deps.RuntimeDep, body: NextRequest) -> NextAnswer:
    """The movies a viewer is most likely to watch next after their history (oldest first).

    The sources read the last movies, the most recent weighing most; nothing of the history comes back
    unless `allow_seen`. Ids the catalogue does not know are ignored and listed in `ignored`; an empty
    history is answered with recently popular movies. With `explain`, each item lists the history movies
    that led to it."""
    deps.check_size(len(body.history), rt.settings.api.max_history, "history movies")
    deps.check_size(len(body.exclude), rt.settings.api.max_exclude, "excluded ids")
    deps.check_at_most(("body", "k"), body.k, rt.settings.api.max_k, "k")
    rules = Filter.of(body.exclude, deps.known_genre(rt, ("body", "genre"), body.genre), body.include_adult)
    history = body.movie_ids()
    try:
        served = await on_the_loop_unless_blocking(
            lambda: recommend_next(
                rt, body.strategy, history, body.k, rules, allow_seen=body.allow_seen, explain=body.explain
            )
        )
    except StrategyUnavailable as exc:
        request.state.strategy = body.strategy
        raise HTTPException(status_code=503, detail=str(exc)) from None
    return answer(request, served)


def answer(request: Request, served: NextServed) -> NextAnswer:
    """A served next list as the API answers it (titles, degradation, metrics)."""
    request.state.strategy = served.strategy
    if served.missing:
        request.app.state.metrics.count_degraded(served.strategy, served.missing)
    titles = deps.titles(request, [r.movie_id for r in served.items])
    because: list[list[int] | None] = [*served.because] if served.because is not None else [None] * len(served.items)
    return NextAnswer(
        strategy=served.strategy,
        degraded=bool(served.missing),
        missing=served.missing,
        ignored=served.ignored,
        items=[
            NextMovie(movie_id=r.movie_id, title=titles.get(r.movie_id, ""), score=r.score, source=r.source, because=b)
            for r, b in zip(served.items, because)
        ],
    )
