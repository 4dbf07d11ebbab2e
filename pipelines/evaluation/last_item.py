"""The last-item protocol (the literature's leave-last-out): each user's last rating is the target.

For every user with at least 3 ratings, in (timestamp, movieId) order: the last rating tests, the one before
it validates; a strategy gets the user's whole history before the target (``History``, seen movies dropped)
and ranks the full catalogue (no sampled negatives); a hit when the target is in the top k.

The models are trained on every rating that is not a target: the ratings minus each such user's last rating
(for validation, minus the last two). That is the literature's split, and it leaks time across users: another
user's ratings *later* than a target can train the model that predicts it. :func:`later_share` measures how
much; the report states it. The model set is trained in memory by the registry's trainers (every registered
model), so neither the served nor the evaluation build is touched.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.evaluation.history_protocol import ProtocolResult, UserOrder, history_lengths, paired_comparisons
from pipelines.evaluation.metrics import evaluate_histories
from pipelines.evaluation.protocol import utc
from pipelines.models.model_set import resolve
from services.recommender.base import History
from services.recommender.filters import ItemFacts
from services.recommender.registry import REGISTRY, SourceInputs, make_history_sources
from services.recommender.sources import VectorIndex
from services.recommender.standard import DEFAULT_CONTENT, FusionConfig, build_strategies
from services.recommender.strategies import BatchStrategy
from services.serving.runtime import history_fusion
from services.settings import ContentSettings, HistorySettings, Settings
from services.stores.catalog import MovieFacts

MIN_RATINGS = 3  # a user needs a test target, a validation target and at least one movie before them
TEST, VALIDATION = 1, 2  # ratings held out per user: the last one (test) or the last two (validation)


@dataclass(frozen=True, eq=False)
class LeaveLastOut:
    """The targets (one per user) with their histories, and the ratings the models train on."""

    held_out: int  # 1: each user's last rating is the target; 2: the one before it
    users: np.ndarray
    targets: np.ndarray
    timestamps: np.ndarray  # of the targets
    histories: list[History]  # per target: the user's ratings before it, oldest first
    train: pd.DataFrame  # the ratings minus each target user's last `held_out` ratings

    def __len__(self) -> int:
        return int(len(self.users))

    @property
    def until(self) -> int:
        """The trainers' cutoff: one after the newest training rating (the set has no time cutoff)."""
        return int(self.train["timestamp"].max()) + 1 if len(self.train) else 0


def leave_last_out(ratings: pd.DataFrame, held_out: int = TEST, *, min_ratings: int = MIN_RATINGS) -> LeaveLastOut:
    """Each user with >= `min_ratings` ratings: the rating `held_out` from the end is the target, everything
    before it the history; the training ratings are all ratings minus those users' last `held_out` ones
    (a user with fewer ratings trains with all of them and is not a target)."""
    if held_out < 1 or min_ratings < held_out + 1:
        raise ValueError("a target needs at least one rating before it")
    ordered = UserOrder.of(ratings)
    n = len(ordered.users)
    ends = np.r_[ordered.users[1:] != ordered.users[:-1], True] if n else np.zeros(0, bool)
    last = np.flatnonzero(ends)  # each user's last row
    counts = last - ordered.starts[last] + 1
    eligible = last[counts >= min_ratings]
    target_rows = eligible - (held_out - 1)
    dropped = np.zeros(n, dtype=bool)
    for back in range(held_out):
        dropped[eligible - back] = True
    train = ratings.iloc[ordered.order[~dropped]].reset_index(drop=True)
    return LeaveLastOut(
        held_out,
        ordered.users[target_rows],
        ordered.movies[target_rows],
        ordered.stamps[target_rows],
        [ordered.history(int(row)) for row in target_rows],
        train,
    )


def later_share(split: LeaveLastOut) -> float:
    """Mean, over targets, of the share of training ratings newer than the target: the time leakage across users."""
    if not len(split) or split.train.empty:
        return 0.0
    stamps = np.sort(split.train["timestamp"].to_numpy(np.int64))
    later = len(stamps) - np.searchsorted(stamps, split.timestamps, side="right")
    return float((later / len(stamps)).mean())


def train_models(settings: Settings, split: LeaveLastOut) -> dict[str, Any]:
    """Every registered model, trained in memory on the split's training ratings with `settings`' (tuned)
    parameters."""
    if split.train.empty:
        raise RuntimeError("no training ratings: every rating is a target")
    return {
        spec.name: resolve(spec.trainer)(split.train, spec.params(settings), cutoff=split.until, progress=False)
        for spec in REGISTRY.models.values()
    }


def history_strategies(
    facts: MovieFacts,
    models: Mapping[str, Any],
    vectors: VectorIndex | None,
    history: HistorySettings,
    fusion: FusionConfig,
    *,
    seed: int,
    content: ContentSettings = DEFAULT_CONTENT,
) -> dict[str, BatchStrategy]:
    """The history strategies (as the runtime builds them, live sources) over an in-memory model set."""
    sources = make_history_sources(SourceInputs(facts, models, vectors, seed, history, content))
    return build_strategies(sources, fusion, facts=ItemFacts(facts.movie_ids, facts.genres, facts.adult))


def score_last_item(
    settings: Settings,
    ratings: pd.DataFrame,
    facts: MovieFacts,
    vectors: VectorIndex | None,
    k: int,
    *,
    resamples: int,
    seed: int,
    only: Sequence[str] = (),
) -> ProtocolResult:
    """Every history strategy on each user's last rating, its models trained in memory on the other ratings
    (pass tuned settings)."""
    started = time.perf_counter()
    split = leave_last_out(ratings, TEST)
    if not len(split):
        raise RuntimeError(f"no user has {MIN_RATINGS} ratings: the last-item protocol has no targets")
    models = train_models(settings, split)
    trained = time.perf_counter() - started
    built = history_strategies(
        facts, models, vectors, settings.history, history_fusion(settings), seed=seed, content=settings.content
    )
    chosen = {name: s for name, s in built.items() if not only or name in only}
    scores = evaluate_histories(
        chosen, split.histories, split.targets, split.users, k, len(facts.movie_ids), resamples=resamples, seed=seed
    )
    paired, parts = paired_comparisons(scores, split.users, k, resamples=resamples, seed=seed)
    share = later_share(split)
    info = {
        "protocol": f"each user with >= {MIN_RATINGS} ratings: the last rating by (timestamp, movieId) is the "
        "target, the whole history before it the query (seen movies excluded), the full catalogue ranked",
        "models": {
            "trained_on": "leave-last-out: every rating minus each target user's last one (no time cutoff)",
            "ratings": int(len(split.train)),
            "trained_seconds": round(trained, 2),
            "history": {
                "last": settings.history.last,
                "decay": settings.history.decay,
                "sequential": settings.history.sequential,
            },
            "fusion": {
                "weights": dict(settings.history.weights),
                "rank_constant": settings.history.rank_constant,
                "depth": settings.fusion.depth,
            },
        },
        "leakage": {
            "later_training_share": round(share, 4),
            "note": "the split is per user, not in time, so the models train on other users' ratings made after "
            f"a target (on average {share:.1%} of the training ratings are newer than the target they help predict); "
            "the history protocol has no such leak",
        },
        "targets": {"first": utc(int(split.timestamps.min())), "last": utc(int(split.timestamps.max()))},
        "history_length": history_lengths(split.histories),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return ProtocolResult(
        "last_item",
        "last-item protocol (each user's last rating, full ranking)",
        k,
        split.users,
        scores,
        paired,
        parts,
        info,
    )
