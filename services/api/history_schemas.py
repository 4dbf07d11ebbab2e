"""Request and response bodies of the history routes (`POST /next`, `GET /users/{user_id}/next`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.api.schemas import Count, Degraded, Missing, MovieId, Rating, StrategyName


class Watched(BaseModel):
    """One movie of a history, with what the platform knows of it."""

    movie_id: MovieId
    rating: Rating | None = None
    at: datetime | None = Field(default=None, description="when it was watched (ISO 8601)")

    model_config = ConfigDict(extra="forbid")


class NextRequest(BaseModel):
    history: list[MovieId | Watched] = Field(
        description="the viewer's movies, oldest first: ids or objects; at most NEXTWATCH_MAX_HISTORY (default 500)"
    )
    k: Count = Field(default=10, ge=1, description="how many movies, at most NEXTWATCH_MAX_K (default 100)")
    strategy: StrategyName = "hybrid"
    exclude: list[MovieId] = Field(default_factory=list, description="never recommend these")
    genre: str | None = Field(default=None, max_length=100, description="only movies of this genre")
    include_adult: bool = False
    allow_seen: bool = Field(default=False, description="movies of the history may come back")
    explain: bool = Field(default=False, description="add, per item, the history movies that led to it")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "history": [1, 3114, {"movie_id": 2355, "rating": 4.5, "at": "2026-12-01T20:00:00Z"}],
                    "k": 10,
                    "strategy": "hybrid",
                    "exclude": [],
                    "genre": None,
                    "include_adult": False,
                    "allow_seen": False,
                    "explain": False,
                }
            ]
        },
    )

    def movie_ids(self) -> list[int]:
        """The history's movie ids, oldest first."""
        return [h.movie_id if isinstance(h, Watched) else h for h in self.history]


class NextMovie(BaseModel):
    movie_id: int
    title: str
    score: float = Field(description="the strategy's score, higher is better")
    source: str = Field(description="the source that contributed most")
    because: list[int] | None = Field(
        default=None, description="with explain=true: the history movies that led to it, most recent first"
    )


class NextAnswer(BaseModel):
    strategy: str = Field(description="the strategy that answered (recent-popular for an empty history)")
    degraded: Degraded = False
    missing: Missing = []
    ignored: list[int] = Field(default_factory=list, description="history ids the catalogue does not know")
    items: list[NextMovie]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "strategy": "hybrid",
                    "degraded": False,
                    "missing": [],
                    "ignored": [],
                    "items": [{"movie_id": 78499, "title": "토이 스토리 3", "score": 0.05, "source": "sequential"}],
                }
            ]
        }
    )


class HistoryItem(BaseModel):
    movie_id: int
    title: str
    at: datetime = Field(description="when it was watched (UTC)")
    rating: float | None = None
    type: str = Field(
        default="movielens",
        description='"movielens" (a rating of the bundled dataset) or the event\'s type (`POST /events`)',
    )
    event_id: str | None = Field(default=None, description="the event's id (none for a MovieLens rating)")


class UserHistory(BaseModel):
    user_id: str
    items: list[HistoryItem] = Field(description="oldest first")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "15",
                    "items": [
                        {
                            "movie_id": 1,
                            "title": "토이 스토리",
                            "at": "1997-03-30T12:00:00Z",
                            "rating": 4.0,
                            "type": "movielens",
                            "event_id": None,
                        },
                        {
                            "movie_id": 3114,
                            "title": "토이 스토리 2",
                            "at": "2026-12-01T20:00:00Z",
                            "rating": None,
                            "type": "completed",
                            "event_id": "e-1",
                        },
                    ],
                }
            ]
        }
    )
