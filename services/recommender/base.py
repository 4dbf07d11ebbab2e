"""What strategies answer (one interface, one batch result) and the candidate sources they draw on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

Candidates = Sequence[tuple[int, float]]  # a source's (movie_id, score) for one query, best first


class History(NamedTuple):
    """A viewer's movies, oldest first (the query of the history strategies); with `drop_seen` (the default)
    no answer holds one of them."""

    movies: tuple[int, ...]
    drop_seen: bool = True

    @property
    def seen(self) -> frozenset[int]:
        """The movies no answer may hold."""
        return frozenset(self.movies) if self.drop_seen else frozenset()

    def recent(self, last: int) -> list[int]:
        """The `last` most recent distinct movies, most recent first."""
        out: list[int] = []
        for movie_id in reversed(self.movies):
            if movie_id not in out:
                out.append(movie_id)
                if len(out) == last:
                    break
        return out


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
    """A candidate generator: up to k (movie_id, score) per query, never the query itself: a query is a movie
    id (one-movie sources) or a :class:`History` (history sources, which never return its seen movies)."""

    name: str

    def candidates(self, queries: Sequence[Any], k: int) -> list[list[tuple[int, float]]]: ...


@runtime_checkable
class StartableSource(Source, Protocol):
    """A source whose calls reach a store: a call can be started ahead and waited for later (the guarded
    sources of the API), so that the store works while the other sources answer."""

    def start(self, queries: Sequence[Any], k: int) -> Callable[[], list[list[tuple[int, float]]]]: ...


class BatchResult(NamedTuple):
    """A served batch: one list per query, the sources it had to do without and, when explained, each
    item's score per source (a fused item's shares; a chained item's one source)."""

    items: list[list[Recommendation]]
    missing: list[str]
    contributions: list[list[dict[str, float]]] | None = None

    @property
    def degraded(self) -> bool:
        return bool(self.missing)
