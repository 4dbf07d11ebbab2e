"""The trainers the registry names: ``trainer(ratings, params, *, cutoff, progress) -> artifact``.

`ratings` are already those strictly before `cutoff` (the newest rating + 1 when the set has no cutoff).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.collaborative.als import train_als
from pipelines.collaborative.popularity import recent_popularity as recent_counts
from pipelines.collaborative.sequential import build_sequential
from services.stores.collaborative import ALSParams, CollaborativeModel
from services.stores.histories import UserHistories
from services.stores.order_model import OrderModel, OrderParams
from services.stores.popularity import Counts, RecentParams
from services.stores.sequential import SequentialModel, SequentialParams


def als(ratings: pd.DataFrame, params: ALSParams, *, cutoff: int, progress: bool) -> CollaborativeModel:
    return train_als(ratings, params, progress=progress)


def sequential(ratings: pd.DataFrame, params: SequentialParams, *, cutoff: int, progress: bool) -> SequentialModel:
    return build_sequential(ratings, params)


def popularity(ratings: pd.DataFrame, params: None, *, cutoff: int, progress: bool) -> Counts:
    counts = ratings["movieId"].value_counts()
    return Counts({int(m): int(c) for m, c in counts.items()}, cutoff)


def recent_popularity(ratings: pd.DataFrame, params: RecentParams, *, cutoff: int, progress: bool) -> Counts:
    return Counts(recent_counts(ratings, cutoff, params.days), cutoff)


def learned(ratings: pd.DataFrame, params: OrderParams, *, cutoff: int, progress: bool) -> OrderModel:
    from pipelines.sequence.train import train_order_model  # torch is imported only to train this model

    return train_order_model(ratings, params, progress=progress)


def histories(ratings: pd.DataFrame, params: None, *, cutoff: int, progress: bool) -> UserHistories:
    ordered = ratings.sort_values(["userId", "timestamp", "movieId"], kind="stable")
    users, counts = np.unique(ordered["userId"].to_numpy(np.int64), return_counts=True)
    return UserHistories(
        users,
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        ordered["movieId"].to_numpy(np.int32),
        ordered["timestamp"].to_numpy(np.int64),
        ordered["rating"].to_numpy(np.float32),
        cutoff,
    )
