"""Request and response bodies of the event routes (`POST /events`, `DELETE /users/{user_id}`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SkipValidation,
    Strict,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)

from services.api.schemas import MovieId
from services.serving.events import NewEvent

# no spaces or control characters; any other Unicode text (a MovieLens user id as its decimal string)
ID_PATTERN = r"^[^\s\x00-\x1f\x7f]+$"
UserIdText = Annotated[
    str, Strict(), Field(min_length=1, max_length=64, pattern=ID_PATTERN, description="the platform's user id")
]
EventType = Literal["watched", "completed", "abandoned", "rated", "not_interested"]


def _text(value: object) -> object:
    """A time is ISO 8601 text: not a number (which pydantic would read as epoch seconds)."""
    if not isinstance(value, str):
        raise ValueError("a time is ISO 8601 text with a time zone, like 2026-12-01T20:00:00Z")
    return value


IsoTime = Annotated[AwareDatetime, BeforeValidator(_text)]
HalfStars = Annotated[
    float,
    Strict(),
    Field(ge=0.5, le=5.0, multiple_of=0.5, allow_inf_nan=False, description="0.5 to 5 in halves; only with rated"),
]


class Event(BaseModel):
    """One thing a viewer did."""

    event_id: Annotated[str, Strict()] = Field(
        min_length=1, max_length=128, pattern=ID_PATTERN, description="the platform's id: a retried event counts once"
    )
    user_id: UserIdText
    movie_id: MovieId
    type: EventType
    rating: HalfStars | None = Field(default=None, validate_default=True)
    at: IsoTime | None = Field(default=None, description="when (ISO 8601 with a time zone); left out: when it arrives")

    model_config = ConfigDict(extra="forbid")

    @field_validator("rating")
    @classmethod
    def _rating_only_when_rated(cls, rating: float | None, info: ValidationInfo) -> float | None:
        if "type" not in info.data:  # the type is invalid itself: that error says it
            return rating
        if info.data["type"] == "rated" and rating is None:
            raise ValueError("a rated event needs a rating (0.5 to 5 in halves)")
        if info.data["type"] != "rated" and rating is not None:
            raise ValueError("only a rated event has a rating")
        return rating

    def new(self) -> NewEvent:
        """The event as the serving layer records it."""
        return NewEvent(self.event_id, self.user_id, self.movie_id, self.type, self.rating, self.at)


class EventBatch(BaseModel):
    # the events are validated by `checked`, in the route's worker thread: FastAPI validates a body on the event
    # loop, where 500 events hold up every other request for a millisecond or more
    events: list[SkipValidation[Event]] = Field(
        description="at most NEXTWATCH_MAX_EVENTS (default 500); one invalid event and none is written"
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {
                            "event_id": "e-1",
                            "user_id": "u42",
                            "movie_id": 3114,
                            "type": "completed",
                            "at": "2026-12-01T20:00:00Z",
                        },
                        {"event_id": "e-2", "user_id": "u42", "movie_id": 3114, "type": "rated", "rating": 4.5},
                        {"event_id": "e-3", "user_id": "시청자-1", "movie_id": 2355, "type": "not_interested"},
                    ]
                }
            ]
        },
    )

    def checked(self) -> list[Event]:
        """The events validated, as FastAPI would have (pydantic's ValidationError, located within `events`)."""
        return EVENTS.validate_python(self.events, from_attributes=True)


EVENTS = TypeAdapter(list[Event])


class EventsAnswer(BaseModel):
    accepted: int = Field(description="events stored by this call")
    duplicates: int = Field(description="events whose event_id was stored before (or repeated in the batch)")
    unknown_movies: list[int] = Field(description="movie ids the catalogue lacks (their events are kept)")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"accepted": 2, "duplicates": 1, "unknown_movies": [999999]}]}
    )


class Forgotten(BaseModel):
    user_id: str
    forgotten: int = Field(description="events of the user deleted")
    movielens_ratings_kept: int = Field(
        description="the user's MovieLens ratings: the bundled dataset, which is not deleted"
    )

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"user_id": "15", "forgotten": 3, "movielens_ratings_kept": 42}]}
    )
