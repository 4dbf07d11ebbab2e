"""What every route needs: the runtime, store calls under time limits, and limits from the settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError

from services.api.observability import Metrics
from services.api.schemas import ErrorBody
from services.recommender.filters import ItemFacts, UnknownGenre
from services.serving.runtime import Runtime
from services.stores.events import EventStore

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


async def get_events(request: Request) -> EventStore:
    """The viewers' event store the app's lifespan opened."""
    return request.app.state.events


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
EventsDep = Annotated[EventStore, Depends(get_events)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


NUL_MESSAGE = "text must not contain NUL characters (\\x00)"


async def reject_nul(request: Request) -> None:
    """422 for a NUL character in any text the request carries: a path or query parameter, or a string (or
    key) of its JSON body (no store can keep one, and PostgreSQL refuses it)."""
    found: list[tuple[tuple[str | int, ...], str]] = [
        (("path", k), v) for k, v in request.path_params.items() if "\x00" in str(v)
    ]
    found += [(("query", k), v) for k, v in request.query_params.multi_items() if "\x00" in k + v]
    # JSON writes a NUL only as \u0000 (raw control characters are invalid): most bodies need no walk
    if not found and b"\\u0000" in await request.body():
        try:
            body = await request.json()  # parsed already (FastAPI caches it on the request): no second parse
        except ValueError:
            return  # not JSON: FastAPI answers it itself
        found = [(("body", *loc), v) for loc, v in _nul_strings(body)]
    if found:
        loc, value = found[0]
        raise invalid(loc, NUL_MESSAGE, value)


def _nul_strings(body: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Where a parsed JSON body holds a string (value or key) with a NUL character (walked without recursion:
    a body may nest deeper than Python's recursion limit)."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), body)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, str) and "\x00" in value:
            yield loc, value
        elif isinstance(value, dict):
            stack.extend(((*loc, k), k) for k in value)
            stack.extend(((*loc, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*loc, i), v) for i, v in enumerate(value))


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
