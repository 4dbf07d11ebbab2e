"""The one interface every strategy implements, and the candidate sources they chain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol


class Recommendation(NamedTuple):
    """One recommended movie: its id, the source's score (higher is better) and which source gave it."""

    movie_id: int
    score: float
    source: str


class Strategy(Protocol):
    """Answers "what next after this movie?" for one movie or a batch of movies."""

    name: str

    def similar(self, movie_id: int, k: int) -> list[Recommendation]: ...

    def similar_batch(self, movie_ids: Sequence[int], k: int) -> list[list[Recommendation]]: ...


class Source(Protocol):
    """A candidate generator: up to k (movie_id, score) per query movie, never the query itself."""

    name: str

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]: ...


class ChainResult(NamedTuple):
    """A served batch: one list per query, and the sources it had to do without."""

    items: list[list[Recommendation]]
    missing: list[str]

    @property
    def degraded(self) -> bool:
        return bool(self.missing)


class Served(Protocol):
    """A served batch of any strategy: one list per query, and the parts it had to do without."""

    @property
    def items(self) -> list[list[Recommendation]]: ...

    @property
    def missing(self) -> list[str]: ...
