"""Viewers' events (`POST /events`) and forgetting a viewer (`DELETE /users/{user_id}`): the write routes."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from services.api import deps
from services.api.event_schemas import EventBatch, EventsAnswer, Forgotten
from services.api.history import UserId
from services.api.schemas import ErrorBody
from services.api.writes import WRITE_ERRORS, WriteAllowed
from services.serving.events import forget, record
from services.serving.next import user_history
from services.stores.events import READ_ONLY, EventsReadOnly

router = APIRouter(tags=["events"], dependencies=[WriteAllowed])
ERRORS: deps.Responses = {
    **WRITE_ERRORS,
    503: {"model": ErrorBody, "description": f'"{READ_ONLY}" (a read-only data dir), or the event store is down'},
}


@router.post(
    "/events",
    response_model=EventsAnswer,
    responses={
        **ERRORS,
        **deps.UNREADABLE_BODY,
        413: {"model": ErrorBody, "description": "more events than NEXTWATCH_MAX_EVENTS"},
    },
)
def post_events(rt: deps.RuntimeDep, store: deps.EventsDep, body: EventBatch) -> EventsAnswer:
    """Record what viewers did, stored before the answer. A retried batch counts once (`duplicates`: events
    whose `event_id` is stored already); one invalid event (422 naming its index and field) and nothing of the
    batch is written. Events of movies the catalogue lacks are kept, and listed in `unknown_movies`."""
    try:
        events = body.checked()  # here, on a worker thread, not on the event loop
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", "events", *e["loc"])} for e in errors]) from None
    deps.check_size(len(events), rt.settings.api.max_events, "events")
    try:
        done = record(store, [e.new() for e in events], rt.known_ids)
    except EventsReadOnly:
        raise HTTPException(status_code=503, detail=READ_ONLY) from None
    return EventsAnswer(accepted=done.accepted, duplicates=done.duplicates, unknown_movies=done.unknown_movies)


@router.delete("/users/{user_id}", response_model=Forgotten, responses=ERRORS)
def forget_user(request: Request, rt: deps.RuntimeDep, store: deps.EventsDep, user_id: UserId) -> Forgotten:
    """Delete the viewer's events (and the answers logged for them under experiments). Their MovieLens ratings
    are the bundled dataset and stay (counted in `movielens_ratings_kept`)."""
    try:
        forgotten = forget(store, user_id)
        request.app.state.exposures.forget(user_id)
    except EventsReadOnly:
        raise HTTPException(status_code=503, detail=READ_ONLY) from None
    return Forgotten(user_id=user_id, forgotten=forgotten, movielens_ratings_kept=len(user_history(rt, user_id)))
