"""Bootstrap confidence intervals that resample users (pairs of one user are not independent)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def resample_users(n_users: int, resamples: int, seed: int) -> np.ndarray:
    """`resamples` draws of `n_users` user indices with replacement, shape (resamples, n_users)."""
    return np.random.default_rng(seed).integers(0, n_users, size=(resamples, n_users))


def user_bootstrap(
    users: Sequence[int] | np.ndarray | pd.Series,
    values: Mapping[str, np.ndarray],
    *,
    resamples: int,
    seed: int,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of per-pair means, resampling users with replacement.

    `users[i]` is the user of pair i and `values[name][i]` its per-pair metric. Each resample keeps every
    pair of each drawn user (as often as the user is drawn), and all metrics share the same draws.
    """
    codes, uniques = pd.factorize(np.asarray(users), sort=True)
    n_users = len(uniques)
    if n_users == 0 or resamples <= 0:
        return {}
    draws = resample_users(n_users, resamples, seed)
    offsets = (np.arange(resamples)[:, None] * n_users + draws).ravel()
    weights = np.bincount(offsets, minlength=resamples * n_users).reshape(resamples, n_users).astype(np.float64)
    pairs_drawn = weights @ np.bincount(codes, minlength=n_users)
    tail = (1.0 - level) / 2 * 100
    out: dict[str, tuple[float, float]] = {}
    for name, per_pair in values.items():
        per_user = np.bincount(codes, weights=np.asarray(per_pair, dtype=np.float64), minlength=n_users)
        means = (weights @ per_user) / pairs_drawn
        lo, hi = np.percentile(means, [tail, 100 - tail])
        out[name] = (float(lo), float(hi))
    return out
