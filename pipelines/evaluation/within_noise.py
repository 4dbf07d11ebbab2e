"""The cheaper choice unless the costlier one wins by more than noise.

A source the history hybrid asks, or a longer window of the learned model, costs every answer's time; so
`nextwatch tune` keeps it only when the best choice beats the cheaper one on the validation targets by more than
noise (the paired user-bootstrap 95% interval of their HR@k difference lies above 0), the rule that already
keeps the fusion over its best single source.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pipelines.evaluation.metrics import StrategyScore, compare_paired
from services.recommender.base import History, Source

# validation histories each source answers one at a time, as a request asks, to time it
COST_HISTORIES = 50
# a source taking less than this share of the fusion's answer time (its sources' summed) is kept without a trial:
# dropping it would save nothing worth the hits it may bring
COST_SHARE = 0.1


def answer_seconds(sources: Mapping[str, Source], histories: Sequence[History], want: int) -> dict[str, float]:
    """Per source, its median time (s) to answer one history of `histories[:COST_HISTORIES]` with `want`
    candidates, asked one at a time after one untimed call."""
    asked = list(histories[:COST_HISTORIES])
    seconds: dict[str, float] = {}
    for name, source in sources.items():
        if not asked:
            seconds[name] = 0.0
            continue
        source.candidates(asked[:1], want)  # loads what the first call loads
        times = []
        for history in asked:
            start = time.perf_counter()
            source.candidates([history], want)
            times.append(time.perf_counter() - start)
        seconds[name] = statistics.median(times)
    return seconds


def lightest_within_noise(
    best: StrategyScore,
    weights: Mapping[str, float],
    seconds: Mapping[str, float],
    score: Callable[[dict[str, float]], StrategyScore],
    users: np.ndarray,
    k: int,
    *,
    resamples: int,
    seed: int,
) -> tuple[dict[str, float], StrategyScore, dict[str, Any]]:
    """The fusion `weights` (scored `best`) without each of its sources in turn, the slowest first (`seconds`:
    a source's time per answer; those under COST_SHARE of the sum are not tried), as long as `best` does not beat
    the fusion without it by more than noise; at least one source stays. Every trial is compared with `best`, so
    what is kept is never significantly below it. `score(weights)` scores a fusion. Returns the kept weights,
    their score and, per source tried, its time, the HR@k without it, the paired difference and whether it was
    dropped."""
    kept, kept_score = dict(weights), best
    evidence: dict[str, Any] = {}
    asked = [n for n, w in weights.items() if w > 0]
    total = sum(seconds.get(n, 0.0) for n in asked)
    costly = [n for n in asked if seconds.get(n, 0.0) >= COST_SHARE * total]
    for name in sorted(costly, key=lambda n: (-seconds.get(n, 0.0), n)):
        if sum(1 for w in kept.values() if w > 0) <= 1:
            break
        trial = {**kept, name: 0.0}
        trial_score = score(trial)
        paired = compare_paired(
            best, trial_score, users, "hybrid", f"hybrid without {name}", k,
            resamples=resamples, seed=seed, note="a fusion's sources, on the last-item validation targets",
        )  # fmt: skip
        dropped = paired.interval[0] <= 0
        if dropped:
            kept, kept_score = trial, trial_score
        evidence[name] = {
            "ms_per_answer": round(seconds.get(name, 0.0) * 1000, 4),
            f"hr@{k}_without": trial_score.hit_ratio,
            "best_minus_without": paired.as_dict(),
            "dropped": dropped,
        }
    return kept, kept_score, evidence


def shortest_within_noise(
    windows: dict[int | None, StrategyScore],
    users: np.ndarray,
    k: int,
    *,
    resamples: int,
    seed: int,
    searched: StrategyScore | None = None,
) -> tuple[int | None, dict[str, Any]]:
    """The shortest window the best one (highest HR, the shorter on a tie) does not beat by more than noise, nor
    the `searched` fusion (before `lightest_within_noise` dropped sources) when it scores higher: what is served
    never falls below it beyond noise. Returns the window and, per window, its HR and the paired difference
    against it."""

    def length(window: int | None) -> float:
        return math.inf if window is None else window

    best = min(windows, key=lambda w: (-windows[w].hit_ratio, length(w)))
    against, against_name = windows[best], window_name(best)
    if searched is not None and searched.hit_ratio > against.hit_ratio:
        against, against_name = searched, "searched fusion"
    evidence: dict[str, Any] = {}
    chosen = best
    for window in sorted(windows, key=length, reverse=True):  # longest first: the last one kept is the shortest
        entry: dict[str, Any] = {f"hr@{k}": windows[window].hit_ratio}
        if windows[window] is not against:
            paired = compare_paired(
                against, windows[window], users, against_name, window_name(window), k,
                resamples=resamples, seed=seed, note="the learned model's windows, on the last-item validation targets",
            )  # fmt: skip
            entry["best_minus_this"] = paired.as_dict()
            if paired.interval[0] <= 0 and length(window) < length(chosen):
                chosen = window
        evidence[window_name(window)] = entry
    return chosen, evidence


def window_name(window: int | None) -> str:
    """A window as tuned.json names it ("all": as many movies as the model was trained to read)."""
    return "all" if window is None else str(window)
