"""What strategies answer (one interface, one batch result) and the candidate sources they draw on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

Candidates = Sequence[tuple[int, float]]  # a source's (movie_id, score) for one query, best first


class Recommendation(NamedTuple):
    """One recommended movie: its id, the source's score (higher is better) and which source gave it."""

    movie_id: int
    score: float
    source: str


class Recommender(Protocol):
    """Answers "what next after this movie?" for one movie or a batch of movies (a strategy served in process
    or through the API)."""

    name: str

    def similar(self, movie_id: int, k: int) -> list[Recommendation]: ...

    def similar_batch(self, movie_ids: Sequence[int], k: int) -> list[list[Recommendation]]: ...


class Source(Protocol):
    """A candidate generator: up to k (movie_id, score) per query movie, never the query itself."""

    name: str

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]: ...


class BatchResult(NamedTuple):
    """A served batch: one list per query, the sources it had to do without and, when explained, each
    item's score per source (a fused item's shares; a chained item's one source)."""

    items: list[list[Recommendation]]
    missing: list[str]
    contributions: list[list[dict[str, float]]] | None = None

    @property
    def degraded(self) -> bool:
        return bool(self.missing)
