"""Serving "what next" for a viewer's history: the history strategies, the seen filter, unknown movies ignored,
and (with `explain`) which history movies led to each item."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.recommender.base import History, Recommendation
from services.recommender.filters import Filter
from services.recommender.registry import explaining, part_of_source
from services.recommender.strategies import BatchStrategy
from services.serving.recommend import StrategyUnavailable
from services.serving.runtime import Runtime

# what an empty history (or one the catalogue knows nothing of) is answered with
EMPTY_HISTORY = "recent-popular"
# how deep a history movie's own neighbours are searched for an item it led to, and how many are named
BECAUSE_DEPTH = 20
BECAUSE_MOST = 3


@dataclass(frozen=True)
class NextServed:
    """A served next list: the strategy that answered, its items, the parts missing, the history ids the
    catalogue does not know, and (with `explain`) per item the history movies that led to it."""

    strategy: str
    items: list[Recommendation]
    missing: list[str]
    ignored: list[int]
    because: list[list[int]] | None


def recommend_next(
    rt: Runtime,
    strategy: str,
    history: Sequence[int],
    k: int,
    rules: Filter | None,
    *,
    allow_seen: bool = False,
    explain: bool = False,
    using: BatchStrategy | None = None,
) -> NextServed:
    """`strategy`'s next movies after `history` (oldest first); StrategyUnavailable when it cannot be served.

    Movies the catalogue does not know are ignored (and listed); with nothing known, recent-popular
    answers. Unless `allow_seen`, no movie of the history comes back. `using` answers instead of the runtime's
    strategy of that name (an experiment's variant with settings of its own)."""
    catalogue = rt.known_ids
    known_or_not = catalogue.members(history)
    known = tuple(m for m, ok in zip(history, known_or_not) if ok)
    ignored = list(dict.fromkeys(m for m, ok in zip(history, known_or_not) if not ok))
    if not known:
        strategy = EMPTY_HISTORY if EMPTY_HISTORY in rt.history_strategies else "popular"
    chosen = using if using is not None and known else rt.history_strategies.get(strategy)
    if chosen is None:
        raise StrategyUnavailable(f"strategy {strategy!r} is unavailable: missing {', '.join(rt.missing)}")
    query = History(known, drop_seen=not allow_seen)
    items, missing, contributions = chosen.recommend_batch([query], k, filter=rules, explain=explain)
    parts = list(dict.fromkeys(part_of_source().get(s, s) for s in missing))
    because = None
    if contributions is not None:
        because = _because(rt, query, items[0], contributions[0])
    return NextServed(strategy, items[0], parts, ignored, because)


def user_history(rt: Runtime, user_id: str) -> list[tuple[int, int, float]]:
    """A viewer's (movie, timestamp, rating), oldest first: their MovieLens ratings when `user_id` is a
    MovieLens user id (its decimal string) the served model set knows, else nothing."""
    histories = rt.models.get("histories")
    if histories is None or not user_id.isascii() or not user_id.isdigit() or len(user_id) > 18:
        return []
    found = histories.of(int(user_id))
    if found is None:
        return []
    return list(zip(found.movies.tolist(), found.timestamps.tolist(), found.ratings.tolist()))


def _because(
    rt: Runtime, history: History, items: list[Recommendation], shares: list[dict[str, float]]
) -> list[list[int]]:
    """Per item, the recent history movies that led to it: those among whose own top neighbours (by the
    sources that scored the item and explain, i.e. read the history) it is, the most recent and best ranked
    first, at most BECAUSE_MOST."""
    recent = history.recent(rt.settings.history.last)
    decay = rt.settings.history.decay
    ranks: dict[str, list[dict[int, int]]] = {}
    for name in {s for share in shares for s in share} & set(explaining()):
        source = rt.sources.get(name)
        if source is not None:
            rows = source.candidates(recent, BECAUSE_DEPTH)
            ranks[name] = [{m: rank for rank, (m, _) in enumerate(row)} for row in rows]
    out = []
    for rec, share in zip(items, shares):
        weight: dict[int, float] = {}
        for name in share:
            for j, (h, row) in enumerate(zip(recent, ranks.get(name, []))):
                if rec.movie_id in row:
                    weight[h] = weight.get(h, 0.0) + decay**j / (1 + row[rec.movie_id])
        out.append(sorted(weight, key=lambda h: -weight[h])[:BECAUSE_MOST])
    return out
