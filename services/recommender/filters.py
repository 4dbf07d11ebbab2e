"""What a caller does not want recommended, and the catalogue facts that decide it per movie."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Filter:
    """Candidates to drop: explicit ids, movies outside one genre, adult movies."""

    exclude: frozenset[int] = frozenset()
    genre: str | None = None
    include_adult: bool = True

    @classmethod
    def of(cls, exclude: Iterable[int] = (), genre: str | None = None, include_adult: bool = True) -> Filter:
        """A filter from plain values (any iterable of ids)."""
        return cls(frozenset(int(m) for m in exclude), genre or None, include_adult)


class UnknownGenre(ValueError):
    """A genre no catalogue movie has."""


class ItemFacts:
    """Genres and adult flags of the catalogue's movies, for filtering and random browsing."""

    def __init__(self, movie_ids: Sequence[int], genres: Sequence[str], adult: Sequence[bool]) -> None:
        members: dict[str, list[int]] = defaultdict(list)
        self._names: dict[str, str] = {}
        for movie_id, names in zip(movie_ids, genres):
            for name in (names or "").split("|"):
                if name:
                    self._names.setdefault(name.lower(), name)
                    members[name.lower()].append(int(movie_id))
        self._ids = np.asarray(movie_ids, dtype=np.int64)
        self._known = frozenset(int(m) for m in movie_ids)
        self._by_genre = {g: frozenset(ids) for g, ids in members.items()}
        self._adult = frozenset(int(m) for m, a in zip(movie_ids, adult) if a)
        self._pools: dict[tuple[tuple[str, ...] | None, bool], np.ndarray] = {}

    def __contains__(self, movie_id: object) -> bool:
        return movie_id in self._known

    def __len__(self) -> int:
        return len(self._ids)

    def unknown(self, movie_ids: Iterable[int]) -> list[int]:
        """The ids (in order, once each) that are not catalogue movies."""
        return [m for m in dict.fromkeys(movie_ids) if m not in self._known]

    @property
    def genres(self) -> list[str]:
        """Every genre name, as the catalogue spells it, sorted."""
        return sorted(self._names.values())

    def genre(self, name: str) -> str:
        """The catalogue's spelling of a genre (case-insensitive); UnknownGenre when none has it."""
        found = self._names.get(name.strip().lower())
        if found is None:
            raise UnknownGenre(f"unknown genre {name!r}; known genres: {', '.join(self.genres)}")
        return found

    def genres_containing(self, text: str) -> list[str]:
        """Genres whose name contains `text`, case-insensitively (the earlier service's /genres match)."""
        needle = text.strip().lower()
        return sorted(name for key, name in self._names.items() if needle and needle in key)

    def predicate(self, rules: Filter) -> Callable[[int], bool] | None:
        """A test a candidate must pass, None when the filter lets everything through."""
        exclude = rules.exclude
        in_genre = self._by_genre.get(rules.genre.lower(), frozenset()) if rules.genre else None
        adult = frozenset() if rules.include_adult else self._adult
        if not exclude and in_genre is None and not adult:
            return None
        if in_genre is None:
            return lambda m: m not in exclude and m not in adult
        return lambda m: m in in_genre and m not in exclude and m not in adult

    def sample(
        self, genres: Sequence[str] | None, n: int, *, include_adult: bool, rng: np.random.Generator
    ) -> list[int]:
        """Up to n distinct random movies of any of `genres` (of the whole catalogue when None)."""
        pool = self._pool(None if genres is None else tuple(sorted(g.lower() for g in genres)), include_adult)
        take = min(n, len(pool))
        return [int(m) for m in rng.choice(pool, size=take, replace=False)] if take else []

    def _pool(self, genres: tuple[str, ...] | None, include_adult: bool) -> np.ndarray:
        pool = self._pools.get((genres, include_adult))
        if pool is None:
            if genres is None:
                ids = set(self._ids.tolist())
            else:
                ids = set().union(*(self._by_genre.get(g, frozenset()) for g in genres))
            if not include_adult:
                ids -= self._adult
            pool = self._pools[(genres, include_adult)] = np.asarray(sorted(ids), dtype=np.int64)
        return pool
