"""Serving a strategy: run it for a batch of movies, degrade without failing parts, explain each item."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.recommender.base import Recommendation
from services.recommender.filters import Filter
from services.recommender.registry import part_of_source
from services.serving.guards import StoreUnavailable
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
    items, missing, contributions = chosen.recommend_batch(movie_ids, k, filter=rules, explain=explain)
    parts = list(dict.fromkeys(part_of_source().get(s, s) for s in missing))
    if contributions is None:  # not explained
        return Served(items, parts, None)
    explanations = []
    for query, recs, shares in zip(movie_ids, items, contributions):
        viewers = rt.sequential.viewers(query, [r.movie_id for r in recs]) if rt.sequential is not None else {}
        explanations.append(
            [Explanation(dict(share), viewers.get(r.movie_id) or None) for r, share in zip(recs, shares)]
        )
    return Served(items, parts, explanations)


@dataclass(frozen=True)
class ForRatings:
    """User-based recommendations from ad-hoc ratings, and which ratings the model could use."""

    scored: list[tuple[int, float]]
    because: dict[int, list[tuple[int, float]]]  # with `explain`: each item's contribution per rated movie
    source: str  # "collaborative", or "popular" when the model had nothing to go on or was unavailable
    used: list[int]
    missing: list[str]


def recommend_for_ratings(rt: Runtime, ratings: Mapping[int, float], k: int, *, explain: bool) -> ForRatings:
    """ALS recommendations for someone not in the training data (popular movies, none of the rated ones,
    when the model has nothing to go on or is unavailable)."""
    model = rt.collaborative
    used = [m for m in ratings if model is not None and m in model and ratings[m] >= model.params.min_rating]
    scored: list[tuple[int, float]] = []
    because: dict[int, list[tuple[int, float]]] = {}
    missing: list[str] = [] if model is not None else ["collaborative"]
    if model is not None and used:
        guard = rt.guards["collaborative"]
        try:
            scored = guard.call(model.recommend_for_ratings, ratings, k)
            if explain:
                because = guard.call(model.explain_for_ratings, ratings, [m for m, _ in scored])
        except StoreUnavailable:
            scored, because, missing = [], {}, ["collaborative"]
    source = "collaborative"
    if not scored:
        source = "popular"
        recs = rt.strategies["popular"].similar(next(iter(ratings)), k, filter=Filter.of(ratings, include_adult=False))
        scored = [(r.movie_id, r.score) for r in recs]
    return ForRatings(scored, because, source, used, missing)
