"""What to watch next after a viewer's history (`POST /next`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request

from services.api import deps
from services.api.history_schemas import HistoryItem, NextAnswer, NextMovie, NextRequest, UserHistory
from services.api.recommendations import Strategy
from services.api.schemas import ErrorBody, MovieId
from services.recommender.filters import Filter
from services.serving.guards import on_the_loop_unless_blocking
from services.serving.next import NextServed, recommend_next, user_history
from services.serving.recommend import StrategyUnavailable
from services.serving.runtime import Runtime

router = APIRouter(tags=["recommendations"])
ERRORS: deps.Responses = {503: {"model": ErrorBody, "description": "the strategy's store or model is unavailable"}}
UserId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$", description="the platform's user id")
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
    return await _answer_next(
        request, rt, body.strategy, body.movie_ids(), body.k, rules, allow_seen=body.allow_seen, explain=body.explain
    )


async def _answer_next(
    request: Request,
    rt: Runtime,
    strategy: str,
    history: list[int],
    k: int,
    rules: Filter,
    *,
    allow_seen: bool,
    explain: bool,
) -> NextAnswer:
    """The next list for a history, answered on the event loop unless a store must be asked."""
    try:
        served = await on_the_loop_unless_blocking(
            lambda: recommend_next(rt, strategy, history, k, rules, allow_seen=allow_seen, explain=explain)
        )
    except StrategyUnavailable as exc:
        request.state.strategy = strategy
        raise HTTPException(status_code=503, detail=str(exc)) from None
    return answer(request, served)


@router.get("/users/{user_id}/next", response_model=NextAnswer, responses=ERRORS)
async def user_next(
    request: Request,
    rt: deps.RuntimeDep,
    user_id: UserId,
    strategy: Strategy = "hybrid",
    k: Annotated[int, Query(ge=1, description="how many movies, at most NEXTWATCH_MAX_K (default 100)")] = 10,
    exclude: Annotated[list[MovieId], Query(description="movie ids never to recommend")] = [],  # noqa: B006
    genre: Annotated[str | None, Query(max_length=100, description="only movies of this genre")] = None,
    include_adult: Annotated[bool, Query(description="also adult movies")] = False,
    allow_seen: Annotated[bool, Query(description="movies of the history may come back")] = False,
    explain: Annotated[bool, Query(description="add, per item, the history movies that led to it")] = False,
) -> NextAnswer:
    """What `POST /next` answers for the viewer's history as the service knows it: their MovieLens ratings in
    time order (a user it does not know has an empty history: recently popular movies)."""
    deps.check_size(len(exclude), rt.settings.api.max_exclude, "excluded ids")
    deps.check_at_most(("query", "k"), k, rt.settings.api.max_k, "k")
    rules = Filter.of(exclude, deps.known_genre(rt, ("query", "genre"), genre), include_adult)
    history = [m for m, _, _ in user_history(rt, user_id)]
    return await _answer_next(request, rt, strategy, history, k, rules, allow_seen=allow_seen, explain=explain)


@router.get("/users/{user_id}/history", response_model=UserHistory)
def history_of(request: Request, rt: deps.RuntimeDep, user_id: UserId) -> UserHistory:
    """The viewer's history as the service knows it, oldest first: their MovieLens ratings."""
    watched = user_history(rt, user_id)
    titles = deps.titles(request, [m for m, _, _ in watched])
    return UserHistory(
        user_id=user_id,
        items=[
            HistoryItem(movie_id=m, title=titles.get(m, ""), at=datetime.fromtimestamp(t, UTC), rating=r)
            for m, t, r in watched
        ],
    )


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
