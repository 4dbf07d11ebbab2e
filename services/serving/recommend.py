"""Serving a strategy: run it for a batch of movies, degrade without failing parts, explain each item."""

from __future__ import annotations

from dataclasses import dataclass

from services.recommender.base import Recommendation
from services.recommender.filters import Filter
from services.recommender.fusion import FusionStrategy
from services.serving.guards import PART_OF_SOURCE
from services.serving.runtime import Runtime


class StrategyUnavailable(RuntimeError):
    """The strategy needs a part this runtime does not have."""


@dataclass(frozen=True)
class Explanation:
    """Why an item is recommended: each source's share of its fused score (hybrid), and how many viewers
    of the query movie watched it within the next titles (when the sequential model knows the pair)."""

    contributions: dict[str, float]
    viewers: int | None


@dataclass(frozen=True)
class Served:
    items: list[list[Recommendation]]
    missing: list[str]  # the parts (vectors, collaborative, sequential) the answer was given without
    explanations: list[list[Explanation]] | None  # with `explain`: one per item


def recommend(
    rt: Runtime, strategy: str, movie_ids: list[int], k: int, rules: Filter | None, *, explain: bool = False
) -> Served:
    """`strategy`'s recommendations for each movie; StrategyUnavailable when it cannot be served."""
    chosen = rt.strategies.get(strategy)
    if chosen is None:
        raise StrategyUnavailable(f"strategy {strategy!r} is unavailable: missing {', '.join(rt.missing)}")
    contributions: list[list[dict[str, float]]] | None = None
    if explain and isinstance(chosen, FusionStrategy):
        fused = chosen.recommend_batch(movie_ids, k, filter=rules, explain=True)
        items, missing, contributions = fused.items, fused.missing, fused.contributions  # type: ignore[union-attr]
    else:
        result = chosen.recommend_batch(movie_ids, k, filter=rules)
        items, missing = result.items, result.missing
    parts = list(dict.fromkeys(PART_OF_SOURCE.get(s, s) for s in missing))
    if not explain:
        return Served(items, parts, None)
    explanations = []
    for pos, (query, recs) in enumerate(zip(movie_ids, items)):
        viewers = rt.sequential.viewers(query, [r.movie_id for r in recs]) if rt.sequential is not None else {}
        shares = contributions[pos] if contributions is not None else [{r.source: r.score} for r in recs]
        explanations.append(
            [Explanation(dict(share), viewers.get(r.movie_id) or None) for r, share in zip(recs, shares)]
        )
    return Served(items, parts, explanations)
