"""The ALS fold-in's ranking (services/stores/ranking.py) against implicit's own recommend for the same user."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from pipelines.collaborative.als import train_als
from services.stores.collaborative import ALSParams, CollaborativeModel

PARAMS = ALSParams(factors=8, iterations=5, regularization=0.05, alpha=1.0, min_rating=3.0, seed=3)


def ratings(users: int = 80, movies: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        (u, int(m), float(rng.integers(1, 6)), 1_000 + i)
        for u in range(1, users + 1)
        for i, m in enumerate(rng.choice(np.arange(1, movies + 1) * 7, 25, replace=False))
    ]
    return pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])


def implicit_ranking(model: CollaborativeModel, rated: dict[int, float], k: int) -> list[tuple[int, float]]:
    """implicit's recommend for an ad-hoc user: liked movies folded in, every rated movie filtered."""
    index = {int(m): i for i, m in enumerate(model.item_ids)}
    liked = sorted((index[m], r) for m, r in rated.items() if r >= PARAMS.min_rating)  # ratings as confidence
    data, columns = [r for _, r in liked], [i for i, _ in liked]
    row = csr_matrix((data, columns, [0, len(liked)]), shape=(1, len(model.item_ids)), dtype=np.float32)
    factors = model._als.recalculate_user(0, row)  # the fold-in model the store itself uses
    scores = model.item_factors @ factors
    scores[[index[m] for m in rated]] = -np.inf
    order = np.lexsort((model.item_ids, -scores))[:k]
    return [(int(model.item_ids[i]), float(scores[i])) for i in order if np.isfinite(scores[i])]


def test_fold_in_ranks_every_unrated_movie_as_a_full_sort_does() -> None:
    model = train_als(ratings(), PARAMS, progress=False)
    rng = np.random.default_rng(1)
    ids = model.item_ids.tolist()
    users = [{int(m): float(rng.integers(1, 6)) for m in rng.choice(ids, n, replace=False)} for n in (1, 5, 30, 290)]
    for k in (1, 10, 60, 400):
        batched = model.recommend_for_many(users, k)
        for user, found in zip(users, batched):
            expected = implicit_ranking(model, user, k) if any(r >= 3 for r in user.values()) else []
            assert [m for m, _ in found] == [m for m, _ in expected]
            np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], rtol=1e-5, atol=1e-6)
            alone = model.recommend_for_ratings(user, k)  # the same (scores to float32 rounding: a vector product)
            assert [m for m, _ in alone] == [m for m, _ in found]
            np.testing.assert_allclose([s for _, s in alone], [s for _, s in found], rtol=1e-5, atol=1e-6)
