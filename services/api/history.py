"""What to watch next after a viewer's history (`POST /next`)."""

from __future__ import annotations

from itertools import repeat
from typing import Annotated

import pydantic_core
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from services.api import deps
from services.api.event_schemas import ID_PATTERN
from services.api.experiment_schemas import ViewerNextAnswer
from services.api.history_schemas import HistoryItem, NextAnswer, NextRequest, UserHistory
from services.api.recommendations import Strategy
from services.api.schemas import ErrorBody, MovieIdText
from services.recommender.filters import Filter
from services.recommender.strategies import BatchStrategy
from services.serving.events import known_items, viewer_history
from services.serving.experiment_report import arm_of, log_exposure
from services.serving.guards import on_the_loop_unless_blocking
from services.serving.next import NextServed, recommend_next
from services.serving.recommend import StrategyUnavailable
from services.serving.runtime import Runtime

router = APIRouter(tags=["recommendations"])
ERRORS: deps.Responses = {503: {"model": ErrorBody, "description": "the strategy's store or model is unavailable"}}
UserId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, description="the platform's user id (any script)")
]


@router.post(
    "/next",
    response_model=NextAnswer,
    responses={
        **ERRORS,
        **deps.UNREADABLE_BODY,
        413: {"model": ErrorBody, "description": "a longer history than NEXTWATCH_MAX_HISTORY"},
    },
)
async def next_movies(request: Request, rt: deps.RuntimeDep, body: NextRequest) -> Response:
    """The movies a viewer is most likely to watch next after their history (oldest first).

    The sources read the last movies, the most recent weighing most; nothing of the history comes back
    unless `allow_seen`. Ids the catalogue does not know are ignored and listed in `ignored`; an empty
    history is answered with recently popular movies. With `explain`, each item lists the history movies
    that led to it."""
    deps.check_size(len(body.history), rt.settings.api.max_history, "history movies")
    deps.check_size(len(body.exclude), rt.settings.api.max_exclude, "excluded ids")
    deps.check_at_most(("body", "k"), body.k, rt.settings.api.max_k, "k")
    rules = Filter.of(body.exclude, deps.known_genre(rt, ("body", "genre"), body.genre), body.include_adult)
    served = await _served_next(
        request, rt, body.strategy, body.movie_ids(), body.k, rules, allow_seen=body.allow_seen, explain=body.explain
    )
    return answer(request, served)


async def _served_next(
    request: Request,
    rt: Runtime,
    strategy: str,
    history: list[int],
    k: int,
    rules: Filter,
    *,
    allow_seen: bool,
    explain: bool,
    using: BatchStrategy | None = None,
) -> NextServed:
    """The next list for a history, answered on the event loop unless a store must be asked (503 when a part
    it needs is unavailable)."""
    try:
        return await on_the_loop_unless_blocking(
            lambda: recommend_next(rt, strategy, history, k, rules, allow_seen=allow_seen, explain=explain, using=using)
        )
    except StrategyUnavailable as exc:
        request.state.strategy = strategy
        raise HTTPException(status_code=503, detail=str(exc)) from None


@router.get("/users/{user_id}/next", response_model=ViewerNextAnswer, responses=ERRORS)
async def user_next(
    request: Request,
    rt: deps.RuntimeDep,
    store: deps.EventsDep,
    user_id: UserId,
    strategy: Annotated[Strategy | None, Query(description="default: the viewer's variant, else hybrid")] = None,
    k: Annotated[int, Query(ge=1, description="how many movies, at most NEXTWATCH_MAX_K (default 100)")] = 10,
    exclude: Annotated[list[MovieIdText], Query(description="movie ids never to recommend")] = [],  # noqa: B006
    genre: Annotated[str | None, Query(max_length=100, description="only movies of this genre")] = None,
    include_adult: Annotated[bool, Query(description="also adult movies")] = False,
    allow_seen: Annotated[bool, Query(description="movies of the history may come back")] = False,
    explain: Annotated[bool, Query(description="add, per item, the history movies that led to it")] = False,
) -> Response:
    """What `POST /next` answers for the viewer's history as the service knows it: their MovieLens ratings and
    their events (`POST /events`) in time order. Movies marked `not_interested` never come back; abandoned
    and poorly rated (below 3) movies are seen, not followed (a user it does not know has an empty history:
    recently popular movies). Without `strategy`, the viewer's variant of the experiment answers
    (docs/experiments.md); the answer is logged as an exposure under `request_id`."""
    deps.check_size(len(exclude), rt.settings.api.max_exclude, "excluded ids")
    deps.check_at_most(("query", "k"), k, rt.settings.api.max_k, "k")
    genre = deps.known_genre(rt, ("query", "genre"), genre)
    arm = arm_of(rt, request.app.state.experiments, user_id, strategy)
    request_id: str = request.state.request_id
    exposures = request.app.state.exposures

    # the embedded SQLite file is read right here: a reader of its WAL never waits for a writer, and the read
    # (0.5 ms for 200 events) costs less than the hop to a worker thread; a database server on a worker thread
    if store.embedded:
        viewer = viewer_history(rt, store, user_id)
    else:
        viewer = await run_in_threadpool(viewer_history, rt, store, user_id)
    rules = Filter.of([*exclude, *viewer.excluded(allow_seen)], genre, include_adult)
    served = await _served_next(
        request,
        arm.runtime or rt,  # a variant pinned to another build generation answers from it
        arm.strategy,
        viewer.history,
        k,
        rules,
        allow_seen=allow_seen,
        explain=explain,
        using=arm.chosen,
    )
    log_exposure(exposures, request_id, user_id, arm, served)  # stored after the answer, by the store's writer
    if arm.experiment is not None and arm.variant is not None:
        request.app.state.metrics.exposures.labels(arm.experiment.name, arm.variant.name).inc()
    variant = None if arm.variant is None else arm.variant.name
    return answer(request, served, request_id=request_id, variant=variant)


@router.get("/users/{user_id}/history", response_model=UserHistory, responses=ERRORS)
def history_of(request: Request, rt: deps.RuntimeDep, store: deps.EventsDep, user_id: UserId) -> UserHistory:
    """What the service knows of the viewer, oldest first: their MovieLens ratings (type `movielens`) and
    their events, each with its type."""
    known = known_items(rt, store, user_id)
    titles = deps.titles(request, [i.movie_id for i in known])
    return UserHistory(
        user_id=user_id,
        items=[
            HistoryItem(
                movie_id=i.movie_id,
                title=titles.get(i.movie_id, ""),
                at=i.at,
                rating=i.rating,
                type=i.type,
                event_id=i.event_id,
            )
            for i in known
        ],
    )


def answer(request: Request, served: NextServed, **more: str | None) -> Response:
    """A served next list as the API answers it (titles, degradation, metrics): NextAnswer's JSON, then `more`'s
    fields (ViewerNextAnswer's), written straight from the list (no model to build, validate and dump)."""
    request.state.strategy = served.strategy
    if served.missing:
        request.app.state.metrics.count_degraded(served.strategy, served.missing)
    titles = deps.titles(request, [r.movie_id for r in served.items])
    because = served.because if served.because is not None else repeat(None)
    items = [
        {
            "movie_id": int(r.movie_id),
            "title": titles.get(r.movie_id, ""),
            "score": float(r.score),
            "source": r.source,
            "because": b,
        }
        for r, b in zip(served.items, because)
    ]
    body = {
        "strategy": served.strategy,
        "degraded": bool(served.missing),
        "missing": served.missing,
        "ignored": served.ignored,
        "items": items,
        **more,
    }
    return Response(pydantic_core.to_json(body), media_type="application/json")
