"""Train implicit ALS on MovieLens ratings (ratings >= min_rating as implicit feedback)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from services.stores.collaborative import ALSParams, CollaborativeModel, make_als


def interaction_matrix(ratings: pd.DataFrame, min_rating: float) -> tuple[csr_matrix, np.ndarray]:
    """Users x movies CSR of the ratings >= min_rating (values = the ratings), and the movieId of each column."""
    liked = ratings.loc[ratings["rating"] >= min_rating, ["userId", "movieId", "rating"]]
    if liked.empty:
        raise ValueError(f"no ratings >= {min_rating} to train ALS on")
    user_codes, _ = pd.factorize(liked["userId"], sort=True)
    item_codes, item_ids = pd.factorize(liked["movieId"], sort=True)
    values = liked["rating"].to_numpy(np.float32)
    matrix = csr_matrix(
        (values, (user_codes.astype(np.int32), item_codes.astype(np.int32))),
        shape=(int(user_codes.max()) + 1, len(item_ids)),
    )
    return matrix, np.asarray(item_ids, dtype=np.int64)


def train_als(ratings: pd.DataFrame, params: ALSParams, *, progress: bool = True) -> CollaborativeModel:
    """Fit ALS on a userId/movieId/rating frame and return the item side of the model."""
    matrix, item_ids = interaction_matrix(ratings, params.min_rating)
    model = make_als(params)
    started = time.perf_counter()
    model.fit(matrix, show_progress=progress)
    info = {
        "users": int(matrix.shape[0]),
        "items": int(matrix.shape[1]),
        "nnz": int(matrix.nnz),
        "fit_seconds": round(time.perf_counter() - started, 2),
        "max_timestamp": int(ratings["timestamp"].max()) if "timestamp" in ratings else None,
    }
    return CollaborativeModel(item_ids, model.item_factors, params, info)
