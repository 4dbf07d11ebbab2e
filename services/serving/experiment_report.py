"""Serving under an experiment (assign, answer, log the exposure) and its report: online HR@10 per variant.

An exposure is a **hit** when the viewer's next watched or completed event after it, within the horizon
(``NEXTWATCH_EXPERIMENT_HORIZON_HOURS``), is among its first 10 items; a miss when that event is another
movie or no such event came within the horizon; **pending** (not counted yet) while the horizon has not
passed and no event came. Intervals are user-bootstrap percentiles (a viewer's exposures are not
independent); the variants' viewers are disjoint, so a difference resamples each variant's viewers apart.
Over time, each variant's HR@10 is cumulative by the time its exposures were served, per time bucket.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from services.recommender.registry import HYBRID
from services.recommender.strategies import BatchStrategy
from services.serving.experiments import (
    Experiment,
    ExperimentBook,
    Variant,
    missing_parts,
    variant_strategy,
)
from services.serving.next import NextServed
from services.serving.runtime import Runtime
from services.stores.exposures import Exposure, ExposureStore, Watch

K = 10  # the online hit ratio is HR@10: the next movie among the first 10 served
LEVEL = 0.95
# the plot over time: the narrowest of these bucket widths that cuts the exposures' span into < MAX_BUCKETS
BUCKETS = tuple(timedelta(seconds=s) for s in (60, 600, 3600, 6 * 3600, 86400, 7 * 86400))
MAX_BUCKETS = 60
EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class Arm:
    """What answers a viewer: the strategy name, and under an experiment its variant and strategy object."""

    strategy: str
    experiment: Experiment | None = None
    variant: Variant | None = None
    chosen: BatchStrategy | None = None
    runtime: Runtime | None = None  # the generation answering (a pinned variant's), None: the served one


def arm_of(rt: Runtime, book: ExperimentBook, user_id: str, strategy: str | None) -> Arm:
    """A request naming its strategy gets it; otherwise the viewer's variant of the first experiment (none
    configured: hybrid; pinned to a generation that cannot be opened: the control)."""
    assigned = None if strategy is not None else book.assign(user_id)
    if assigned is None:
        return Arm(strategy or HYBRID)
    experiment, variant = assigned
    answering = book.runtime_for(rt, variant)
    if answering is None:
        variant, answering = experiment.variant(experiment.control), rt
    return Arm(variant.strategy, experiment, variant, variant_strategy(answering, variant), answering)


def log_exposure(store: ExposureStore, request_id: str, user_id: str, arm: Arm, served: NextServed) -> None:
    """Log the exposure (stored once per request id by the store's writer, after the answer: a store that fails
    is one warning line, never a failed answer)."""
    exposure = Exposure(
        request_id,
        user_id,
        None if arm.experiment is None else arm.experiment.name,
        None if arm.variant is None else arm.variant.name,
        served.strategy,
        tuple(r.movie_id for r in served.items),
        datetime.now(UTC).replace(tzinfo=None),
    )
    store.log(exposure)


def judge(
    exposures: Sequence[Exposure], watches: Sequence[Watch], horizon: timedelta, now: datetime
) -> list[bool | None]:
    """Per exposure: a hit (True), a miss (False) or pending (None), judged on its viewer's next watched or
    completed event after it (`watches`: by viewer, oldest first)."""
    by_user: dict[str, list[Watch]] = {}
    for w in watches:
        by_user.setdefault(w.user_id, []).append(w)
    times = {user: [w.at for w in ws] for user, ws in by_user.items()}
    out: list[bool | None] = []
    for x in exposures:
        seen = times.get(x.user_id, [])
        i = bisect.bisect_right(seen, x.served)
        following = by_user[x.user_id][i] if i < len(seen) else None
        if following is not None and following.at - x.served <= horizon:
            out.append(following.movie_id in x.items[:K])
        else:
            out.append(False if x.served + horizon <= now else None)
    return out


def bootstrap_means(users: Sequence[str], hits: Sequence[bool], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """The hit ratio of `resamples` user-bootstrap resamples (each drawn viewer brings all their exposures)."""
    codes: dict[str, int] = {}
    index = np.array([codes.setdefault(u, len(codes)) for u in users], dtype=np.int64)
    n = len(codes)
    per_user_hits = np.bincount(index, weights=np.asarray(hits, dtype=np.float64), minlength=n)
    per_user_count = np.bincount(index, minlength=n).astype(np.float64)
    drawn = np.zeros((resamples, n))
    np.add.at(drawn, (np.repeat(np.arange(resamples), n), rng.integers(0, n, size=resamples * n)), 1.0)
    return (drawn @ per_user_hits) / (drawn @ per_user_count)


def _interval(means: np.ndarray) -> list[float]:
    tail = (1 - LEVEL) / 2 * 100
    return [float(v) for v in np.percentile(means, [tail, 100 - tail])]


def experiment_report(
    rt: Runtime, book: ExperimentBook, store: ExposureStore, experiment: Experiment, *, now: datetime | None = None
) -> dict[str, Any]:
    """The experiment's report (docs/experiments.md#report): per variant its exposures, hits, HR@10 with a
    user-bootstrap interval and the offline figures, and each variant against the control."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    horizon = timedelta(hours=rt.settings.experiment_horizon_hours)
    exposures = store.of_experiment(experiment.name)
    outcomes = judge(exposures, store.watches(experiment.name), horizon, now)
    offline = offline_history_scores(rt)
    resamples, seed = rt.settings.protocol.bootstrap_resamples, rt.settings.protocol.seed
    means: dict[str, np.ndarray] = {}
    variants: dict[str, dict[str, Any]] = {}
    for number, variant in enumerate(experiment.variants):
        mine = [(x.user_id, hit) for x, hit in zip(exposures, outcomes) if x.variant == variant.name]
        users = [u for u, hit in mine if hit is not None]
        hits = [hit for _, hit in mine if hit is not None]
        if users and resamples > 0:
            means[variant.name] = bootstrap_means(users, hits, resamples, np.random.default_rng([seed, number]))
        variants[variant.name] = {
            **_variant_entry(book.runtime_for(rt, variant), variant, users, hits, means.get(variant.name), offline),
            "exposures": len(mine),
            "pending": len(mine) - len(users),
        }
    differences = [_difference(experiment, v, variants, means) for v in experiment.variants[1:]]
    width, points = over_time(exposures, outcomes, [v.name for v in experiment.variants])
    return {
        "name": experiment.name,
        "salt": experiment.salt,
        "control": experiment.control,
        "horizon_hours": rt.settings.experiment_horizon_hours,
        "variants": variants,
        "difference": differences[0] if differences else None,
        "differences": differences,
        "over_time_bucket_seconds": None if width is None else int(width.total_seconds()),
        "over_time": points,
    }


def over_time(
    exposures: Sequence[Exposure], outcomes: Sequence[bool | None], variants: Sequence[str]
) -> tuple[timedelta | None, list[dict[str, Any]]]:
    """The bucket width and, at the end of each bucket holding scored exposures, each variant's cumulative
    exposures, hits and HR@10 over its scored exposures served before then (`exposures`: oldest first)."""
    scored = [(x, hit) for x, hit in zip(exposures, outcomes) if hit is not None and x.variant in variants]
    if not scored:
        return None, []
    span = scored[-1][0].served - scored[0][0].served
    width = next((w for w in BUCKETS if span / w < MAX_BUCKETS), BUCKETS[-1])
    totals = {v: [0, 0] for v in variants}
    points: list[dict[str, Any]] = []

    def close(end: datetime) -> None:
        at = end.replace(tzinfo=UTC)
        for variant, (n, hits) in totals.items():
            if n:
                points.append({"at": at, "variant": variant, "exposures": n, "hits": hits, "hr@10": hits / n})

    open_end: datetime | None = None
    for x, hit in scored:
        end = EPOCH + ((x.served - EPOCH) // width + 1) * width
        if open_end is not None and end != open_end:
            close(open_end)
        open_end = end
        totals[str(x.variant)][0] += 1
        totals[str(x.variant)][1] += int(hit)
    close(end)
    return width, points


def _variant_entry(
    rt: Runtime | None,
    variant: Variant,
    users: Sequence[str],
    hits: Sequence[bool],
    means: np.ndarray | None,
    offline: Mapping[str, Any],
) -> dict[str, Any]:
    missing = missing_parts(rt, variant)
    # the offline figures are the served build's, for the strategies as configured
    scored = offline.get(variant.strategy) if not (variant.own_settings or variant.generation) else None
    return {
        "strategy": variant.strategy,
        "share": variant.share,
        "stopped": variant.stopped,
        "generation": variant.generation,
        "degraded": bool(missing),
        "missing": missing,
        "exposures": len(users),
        "hits": int(sum(hits)),
        "hr@10": float(np.mean(hits)) if hits else None,
        "hr@10_ci": _interval(means) if means is not None else None,
        "offline_hr@10": None if scored is None else scored.get("hr@10"),
        "offline_hr@10_ci": None if scored is None else scored.get("hr@10_ci"),
    }


def _difference(
    experiment: Experiment, variant: Variant, variants: Mapping[str, Mapping[str, Any]], means: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """A variant's HR@10 minus the control's, with the unpaired user-bootstrap interval of the difference."""
    mine, control = variants[variant.name]["hr@10"], variants[experiment.control]["hr@10"]
    both = variant.name in means and experiment.control in means
    return {
        "variant": variant.name,
        "against": experiment.control,
        "hr@10": None if mine is None or control is None else mine - control,
        "ci": _interval(means[variant.name] - means[experiment.control]) if both else None,
    }


def offline_history_scores(rt: Runtime) -> dict[str, Any]:
    """The evaluation report's history protocol scores by strategy ({} without a report)."""
    path = rt.settings.data_dir / "report" / "report.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8"))["history"]["strategies"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}
