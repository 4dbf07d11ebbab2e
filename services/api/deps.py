"""What every route needs: the runtime, store calls under time limits, and limits from the settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError

from services.api.observability import Metrics
from services.api.schemas import ErrorBody
from services.recommender.filters import ItemFacts, UnknownGenre
from services.serving.runtime import Runtime

T = TypeVar("T")
# FastAPI answers a body it cannot decode (not UTF-8) with 400, malformed JSON with 422
# the `responses=` of a route: status code -> OpenAPI description (FastAPI's own type for it)
Responses = dict[int | str, dict[str, Any]]
UNREADABLE_BODY: Responses = {400: {"model": ErrorBody, "description": "the body is not UTF-8 text"}}


async def get_runtime(request: Request) -> Runtime:
    """The runtime the app's lifespan opened."""
    return request.app.state.runtime


async def get_metrics(request: Request) -> Metrics:
    """The app's Prometheus metrics."""
    return request.app.state.metrics


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def items(rt: Runtime) -> ItemFacts:
    assert rt.items is not None, "open_runtime sets the item facts"
    return rt.items


def titles(request: Request, movie_ids: Sequence[int]) -> dict[int, str]:
    """Titles of the ids that exist (from the startup snapshot)."""
    return request.app.state.titles.lookup(movie_ids)


def catalog(rt: Runtime, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A catalog call under the store time limit."""
    return rt.guards["catalog"].call(fn, *args, **kwargs)


def invalid(loc: Sequence[str | int], message: str, value: Any) -> RequestValidationError:
    """A 422 in FastAPI's own error format."""
    return RequestValidationError([{"type": "value_error", "loc": tuple(loc), "msg": message, "input": value}])


def check_at_most(loc: Sequence[str | int], value: int, limit: int, what: str) -> None:
    if value > limit:
        raise invalid(loc, f"{what} must be at most {limit}", value)


def check_size(count: int, limit: int, what: str) -> None:
    """413 when a request body lists more than `limit` things."""
    if count > limit:
        raise HTTPException(status_code=413, detail=f"at most {limit} {what} per request, got {count}")


def known_genre(rt: Runtime, loc: Sequence[str | int], genre: str | None) -> str | None:
    """The catalogue's spelling of `genre`; 422 naming the known genres when none has it."""
    if genre is None or not genre.strip():
        return None
    try:
        return items(rt).genre(genre)
    except UnknownGenre as exc:
        raise invalid(loc, str(exc), genre) from None


def require_known(rt: Runtime, movie_ids: Sequence[int]) -> None:
    """404 naming the ids that are not catalogue movies."""
    unknown = items(rt).unknown(movie_ids)
    if len(unknown) == 1:
        raise HTTPException(status_code=404, detail=f"movie {unknown[0]} not found")
    if unknown:
        shown = ", ".join(map(str, unknown[:20])) + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
        raise HTTPException(status_code=404, detail=f"movies not found: {shown}")
