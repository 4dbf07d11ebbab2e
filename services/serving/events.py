"""Viewers' events in the serving layer: recording a batch (idempotent by event_id, all or nothing), and a
viewer as the service knows them: their MovieLens ratings and their events in time order, read into the
ordered history the strategies follow and the movies never to recommend.

How each event counts (docs/api.md#events):

- `watched`, `completed`, and `rated` with a rating of 3 or more: an item of the ordered history;
- `rated` below 3: seen, not a history item; the movie also leaves the history when the viewer's latest
  rating of it is below 3;
- `abandoned`: seen (not recommended unless `allow_seen`), not a history item;
- `not_interested`: never recommended, `allow_seen` or not.

MovieLens ratings are the bundled dataset: each is a history item, as before events, and none is deleted.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Container, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import NamedTuple

from sqlalchemy.exc import SQLAlchemyError

from services.serving.guards import StoreUnavailable
from services.serving.next import user_history
from services.serving.runtime import Runtime
from services.stores.errors import logged
from services.stores.events import EventStore

log = logging.getLogger(__name__)

MOVIELENS = "movielens"  # the type of a MovieLens rating among a viewer's items
LIKED = 3.0  # a rating from here up is a positive history item
POSITIVE = frozenset({MOVIELENS, "watched", "completed"})


class NewEvent(NamedTuple):
    """One event as sent (`at` None: when it arrived); a named tuple, made 500 times a batch (a frozen
    dataclass takes several times as long to make)."""

    event_id: str
    user_id: str
    movie_id: int
    type: str
    rating: float | None
    at: datetime | None


@dataclass(frozen=True)
class Recorded:
    """What a batch did: events newly stored, events already stored (or repeated in the batch), and the movies
    the catalogue lacks (their events are kept)."""

    accepted: int
    duplicates: int
    unknown_movies: list[int]


@dataclass(frozen=True)
class KnownItem:
    """A MovieLens rating (type `movielens`, no event id) or an event of a viewer."""

    movie_id: int
    at: datetime
    rating: float | None
    type: str
    event_id: str | None


@dataclass(frozen=True)
class ViewerHistory:
    """The ordered history the strategies read of a viewer, the movies seen outside that history, and the movies
    never to recommend."""

    history: list[int]
    seen: frozenset[int]
    unwanted: frozenset[int]

    def excluded(self, allow_seen: bool) -> frozenset[int]:
        """The movies no answer may hold (beyond the history itself, which `allow_seen` lets come back)."""
        return self.unwanted if allow_seen else self.unwanted | self.seen


def record(store: EventStore, events: Sequence[NewEvent], catalogue: Container[int]) -> Recorded:
    """Store a batch, committed before it returns; an event_id stored before (or earlier in the batch) is a
    duplicate and is not written again. EventsReadOnly where the store cannot be written."""
    received = _utc_naive(datetime.now(UTC))
    rows: dict[str, dict[str, object]] = {}
    for e in events:  # the first of a repeated event_id is the one written
        if e.event_id not in rows:
            at = _utc_naive(e.at) if e.at is not None else received
            rows[e.event_id] = {
                "event_id": e.event_id,
                "user_id": e.user_id,
                "movie_id": e.movie_id,
                "type": e.type,
                "rating": e.rating,
                "at": at,
                "received": received,
            }
    with _store_calls():
        accepted = store.add(list(rows.values()))
    unknown = list(dict.fromkeys(e.movie_id for e in events if e.movie_id not in catalogue))
    return Recorded(accepted, len(events) - accepted, unknown)


def known_items(rt: Runtime, store: EventStore, user_id: str) -> list[KnownItem]:
    """A viewer's MovieLens ratings and events in time order (a rating before an event of the same time)."""
    ratings = [
        KnownItem(m, datetime.fromtimestamp(t, UTC), r, MOVIELENS, None) for m, t, r in user_history(rt, user_id)
    ]
    with _store_calls():
        stored = store.of_user(user_id)
    events = [KnownItem(e.movie_id, e.at.replace(tzinfo=UTC), e.rating, e.type, e.event_id) for e in stored]
    return sorted(ratings + events, key=lambda item: item.at)  # stable: each list is in order already


def viewer_history(rt: Runtime, store: EventStore, user_id: str) -> ViewerHistory:
    """The history a viewer's items (`known_items`, in the same order) make: read with one query and without an
    object per rating or event."""
    ratings = [(t * 1_000_000, m, MOVIELENS, r) for m, t, r in user_history(rt, user_id)]  # microseconds
    with _store_calls():
        events = store.viewer(user_id, timed=bool(ratings))  # the times only to merge with the ratings
    if not (ratings and events):
        return _follow(ratings or events)
    # time order, a rating before an event of the same time (merge is stable, as known_items' sort)
    return _follow(list(heapq.merge(ratings, events, key=itemgetter(0))))


def _follow(entries: Sequence[tuple[int, int, str, float | None]]) -> ViewerHistory:
    """The history, seen and unwanted movies of a viewer's (time, movie, type, rating) items in time order."""
    latest_rating = {m: r for _, m, kind, r in entries if kind == "rated" and r is not None}
    disliked = {m for m, r in latest_rating.items() if r < LIKED}
    history = [m for _, m, kind, r in entries if _positive(kind, r) and m not in disliked]
    unwanted = frozenset(m for _, m, kind, _ in entries if kind == "not_interested")
    return ViewerHistory(history, frozenset(m for _, m, _, _ in entries) - set(history), unwanted)


def forget(store: EventStore, user_id: str) -> int:
    """Delete a viewer's events (their MovieLens ratings stay); how many there were."""
    with _store_calls():
        return store.forget(user_id)


@contextmanager
def _store_calls() -> Iterator[None]:
    """A failing event store becomes StoreUnavailable naming only the error's type (the API answers 503); its
    message, which may hold SQL and its parameters, goes to one log line."""
    try:
        yield
    except SQLAlchemyError as exc:
        log.warning("events call failed: %s: %s", type(exc).__name__, logged(exc))
        raise StoreUnavailable("events", type(exc).__name__) from exc


def _positive(kind: str, rating: float | None) -> bool:
    return kind in POSITIVE or (kind == "rated" and rating is not None and rating >= LIKED)


def _utc_naive(at: datetime) -> datetime:
    """A time as the store keeps it: UTC without tzinfo."""
    return at.astimezone(UTC).replace(tzinfo=None)
