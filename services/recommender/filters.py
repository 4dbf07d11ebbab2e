"""What a caller does not want recommended, and the catalogue facts that decide it per movie."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from services.stores.catalog import MovieFacts

# a set of movie ids is a byte per id up to the largest when that is at most this many bytes per member (plus
# a floor): MovieLens ids are dense enough; sparser ids are kept as a frozenset
_DENSE_BYTES_PER_ID = 16
_DENSE_FLOOR = 1 << 20


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


class MovieSet:
    """A set of movie ids without an object per movie: a byte per id up to the largest (a dense id range, as
    MovieLens'), else a frozenset. `contains` is the membership test itself (no method call in between)."""

    def __init__(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        top = int(ids.max()) + 1 if len(ids) else 0
        self.contains: Callable[[int], bool]
        self._flags: np.ndarray | None = None  # dense: per id up to the largest, whether it is a member
        if len(ids) and (ids.min() < 0 or top > _DENSE_BYTES_PER_ID * len(ids) + _DENSE_FLOOR):
            self.contains = frozenset(ids.tolist()).__contains__
            return
        flags = np.zeros(top, dtype=bool)
        flags[ids] = True
        data = flags.tobytes()
        self.contains = lambda m: 0 <= m < top and data[m] == 1
        self._flags = flags

    def __contains__(self, movie_id: object) -> bool:
        return isinstance(movie_id, (int, np.integer)) and self.contains(int(movie_id))

    def members(self, movie_ids: Sequence[int]) -> list[bool]:
        """Per id (an int each), whether it is a member: one pass for a whole history on a dense set."""
        flags = self._flags
        if flags is None:
            return [self.contains(m) for m in movie_ids]
        ids = np.fromiter(movie_ids, np.int64, len(movie_ids))
        inside = (ids >= 0) & (ids < len(flags))
        inside[inside] = flags[ids[inside]]
        return inside.tolist()


class ItemFacts:
    """Genres and adult flags of the catalogue's movies, for filtering and random browsing: arrays by ascending
    id and each distinct genre text once; a genre's members are made when a filter first asks for it."""

    def __init__(self, movie_ids: Sequence[int], genres: Sequence[str], adult: Sequence[bool]) -> None:
        texts: dict[str, int] = {}
        codes = np.array([texts.setdefault(g or "", len(texts)) for g in genres], dtype=np.int32)
        self._setup(np.asarray(movie_ids, dtype=np.int64), codes, tuple(texts), np.asarray(adult, dtype=bool))

    @classmethod
    def of(cls, facts: MovieFacts) -> ItemFacts:
        """The facts' columns as they are (no Python value per movie)."""
        items = cls.__new__(cls)
        items._setup(facts.ids, facts.genre_codes, facts.genre_texts, facts.is_adult)
        return items

    def _setup(self, ids: np.ndarray, codes: np.ndarray, texts: tuple[str, ...], adult: np.ndarray) -> None:
        self._names: dict[str, str] = {}  # lower case -> the catalogue's spelling, the first movie's with it
        self._text_genres: list[frozenset[str]] = []  # per distinct genre text: its genres, lower case
        for text in texts:  # in the order the movies first have them
            names = [name for name in text.split("|") if name]
            for name in names:
                self._names.setdefault(name.lower(), name)
            self._text_genres.append(frozenset(name.lower() for name in names))
        order = np.argsort(ids, kind="stable")
        self._ids, self._codes, self._adult_flags = ids[order], codes[order], adult[order]
        self._known = MovieSet(self._ids)
        self._adult = frozenset(self._ids[self._adult_flags].tolist())  # few: a set of them is small
        self._members: dict[str, MovieSet] = {}  # lower-case genre -> its movies, made when first asked
        self._pools: dict[tuple[tuple[str, ...] | None, bool], np.ndarray] = {}

    def __contains__(self, movie_id: object) -> bool:
        return movie_id in self._known

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def known(self) -> MovieSet:
        """Every catalogue movie id."""
        return self._known

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
        adult = frozenset() if rules.include_adult else self._adult
        if rules.genre:
            in_genre = self._genre_members(rules.genre.lower()).contains
            return lambda m: in_genre(m) and m not in exclude and m not in adult
        if not exclude and not adult:
            return None
        return lambda m: m not in exclude and m not in adult

    def allows(self, rules: Filter) -> Callable[[np.ndarray], np.ndarray] | None:
        """`predicate` for an array of candidates at once (True where kept), None when it lets all through."""
        if self.predicate(rules) is None:
            return None
        banned = np.array(sorted(rules.exclude | (frozenset() if rules.include_adult else self._adult)), dtype=np.int64)
        members = self._ids[self._in_genres([rules.genre.lower()])] if rules.genre else None

        def kept(ids: np.ndarray) -> np.ndarray:
            mask = ~np.isin(ids, banned)
            return mask & np.isin(ids, members) if members is not None else mask

        return kept

    def sample(
        self, genres: Sequence[str] | None, n: int, *, include_adult: bool, rng: np.random.Generator
    ) -> list[int]:
        """Up to n distinct random movies of any of `genres` (of the whole catalogue when None)."""
        pool = self._pool(None if genres is None else tuple(sorted(g.lower() for g in genres)), include_adult)
        take = min(n, len(pool))
        return [int(m) for m in rng.choice(pool, size=take, replace=False)] if take else []

    def _in_genres(self, genres: Iterable[str]) -> np.ndarray:
        """Per movie (ascending ids): whether it has any of the lower-case `genres`."""
        wanted = frozenset(genres)
        having = np.array([bool(names & wanted) for names in self._text_genres], dtype=bool)
        return having[self._codes] if len(having) else np.zeros(len(self._ids), dtype=bool)

    def _genre_members(self, genre: str) -> MovieSet:
        members = self._members.get(genre)
        if members is None:
            members = self._members[genre] = MovieSet(self._ids[self._in_genres([genre])])
        return members

    def _pool(self, genres: tuple[str, ...] | None, include_adult: bool) -> np.ndarray:
        pool = self._pools.get((genres, include_adult))
        if pool is None:
            keep = np.ones(len(self._ids), dtype=bool) if genres is None else self._in_genres(genres)
            if not include_adult:
                keep &= ~self._adult_flags
            pool = self._pools[(genres, include_adult)] = np.unique(self._ids[keep])
        return pool
