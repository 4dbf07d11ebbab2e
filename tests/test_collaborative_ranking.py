"""The ALS fold-in against implicit's own, and its ranking (services/stores/ranking.py) against a full sort."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from pipelines.collaborative.als import train_als
from services.stores.collaborative import ALSParams, CollaborativeModel
from services.stores.ranking import SCORE_BLOCK

PARAMS = ALSParams(factors=8, iterations=5, regularization=0.05, alpha=1.0, min_rating=3.0, seed=3)


def ratings(users: int = 80, movies: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        (u, int(m), float(rng.integers(1, 6)), 1_000 + i)
        for u in range(1, users + 1)
        for i, m in enumerate(rng.choice(np.arange(1, movies + 1) * 7, 25, replace=False))
    ]
    return pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])


def liked_row(model: CollaborativeModel, rated: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """The liked movies' item rows (ascending) and ratings."""
    index = {int(m): i for i, m in enumerate(model.item_ids)}
    liked = sorted((index[m], r) for m, r in rated.items() if r >= PARAMS.min_rating)
    return np.array([i for i, _ in liked], np.int64), np.array([r for _, r in liked], np.float64)


def implicit_factors(model: CollaborativeModel, rated: dict[int, float]) -> np.ndarray:
    """implicit's own fold-in of an ad-hoc user (ratings as confidence)."""
    items, values = liked_row(model, rated)
    row = csr_matrix((values, items, [0, len(items)]), shape=(1, len(model.item_ids)), dtype=np.float32)
    return model._als.recalculate_user(0, row)


def full_sorts(model: CollaborativeModel, users: list[dict[int, float]], k: int) -> list[list[tuple[int, float]]]:
    """Per user, the store's fold-in (of the users with a liked movie, solved and scored at once as the store
    does) with every movie scored and sorted (ties by movieId), every rated movie filtered."""
    asked = [pos for pos, user in enumerate(users) if any(r >= PARAMS.min_rating for r in user.values())]
    lines, items, values = model._rated([users[pos] for pos in asked])
    liked = values >= PARAMS.min_rating
    scores = model._fold_in(lines[liked], items[liked], values[liked], len(asked)) @ model.item_factors.T
    index = {int(m): i for i, m in enumerate(model.item_ids)}
    out: list[list[tuple[int, float]]] = [[] for _ in users]
    for pos, row in zip(asked, scores):
        row[[index[m] for m in users[pos]]] = -np.inf
        order = np.lexsort((model.item_ids, -row))[:k]
        out[pos] = [(int(model.item_ids[i]), float(row[i])) for i in order if np.isfinite(row[i])]
    return out


def assert_same_but_near_ties(found: list[tuple[int, float]], expected: list[tuple[int, float]]) -> None:
    """The same ranking, except that movies whose scores differ only by float32 rounding may trade places."""
    assert len(found) == len(expected)
    np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], rtol=1e-5, atol=1e-6)
    where = {m: s for m, s in found}
    last = found[-1][1] if found else 0.0
    for (m, _), (e, score) in zip(found, expected):
        assert m == e or abs(where.get(e, last) - score) <= 1e-6, (m, e)


def users_of(model: CollaborativeModel) -> list[dict[int, float]]:
    rng = np.random.default_rng(1)
    ids = model.item_ids.tolist()
    return [{int(m): float(rng.integers(1, 6)) for m in rng.choice(ids, n, replace=False)} for n in (1, 5, 30, 290)]


def test_fold_in_is_implicits() -> None:
    """The store's fold-in (float64, all users at once) gives implicit's factors to its float32 solver's
    rounding; alpha scales the confidence as implicit's does."""
    for alpha in (1.0, 2.5):
        params = replace(PARAMS, alpha=alpha)
        model = train_als(ratings(), params, progress=False)
        users = [u for u in users_of(model) if any(r >= params.min_rating for r in u.values())]
        liked = [liked_row(model, user) for user in users]
        ours = [model._fold_in(np.zeros(len(items), np.int64), items, values, 1)[0] for items, values in liked]
        theirs = [implicit_factors(model, user) for user in users]
        np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=1e-4, atol=1e-5)


def test_fold_in_ranks_every_unrated_movie_as_a_full_sort_does() -> None:
    model = train_als(ratings(), PARAMS, progress=False)
    users = users_of(model)
    for k in (1, 10, 60, 400):
        batched = model.recommend_for_many(users, k)
        for user, found, expected in zip(users, batched, full_sorts(model, users, k)):
            assert [m for m, _ in found] == [m for m, _ in expected]
            np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], rtol=1e-5, atol=1e-6)
            # the same factors; a lone user's scores may differ from a batch's by float32 rounding (another kernel)
            assert_same_but_near_ties(model.recommend_for_ratings(user, k), found)


def test_more_users_than_a_block_are_each_folded_in_as_alone() -> None:
    model = train_als(ratings(), PARAMS, progress=False)
    rng = np.random.default_rng(2)
    ids = model.item_ids.tolist()
    users = [{int(m): float(rng.integers(1, 6)) for m in rng.choice(ids, rng.integers(1, 40), replace=False)}
             for _ in range(SCORE_BLOCK + 50)]  # fmt: skip
    for user, found in zip(users, model.recommend_for_many(users, 10)):
        assert_same_but_near_ties(model.recommend_for_ratings(user, 10), found)
