"""Viewers' events as training interactions, folded in after the MovieLens ratings (docs/operations.md#events).

Each event becomes a rating the trainers already read:

- `watched`, `completed`: `WATCHED` (4.0), a positive interaction (at or above ALS' `min_rating`, 3);
- `rated`: its rating (positive from 3 up, like a MovieLens rating);
- `abandoned`: `ABANDONED` (2.0): below ALS' `min_rating`, so not liked, but a step of the viewer's sequence
  (co-visitation and the learned model count every rating unless their `min_rating` is set) and a view
  (popularity), as a low MovieLens rating is;
- `not_interested`: no interaction, and it removes that viewer's earlier interactions with the movie (their
  MovieLens rating included); a later event of the movie counts again.

A viewer has one interaction per movie, as in MovieLens: at the time of their first remaining one, with the
rating of their latest (so a `rated` 2 after `completed` makes it 2). A user id that is a MovieLens user's id
(its decimal string, as the server reads it) is that user; the other ids get new ids above the largest
MovieLens userId, in sorted order, so the same events always give the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.settings import Settings
from services.stores.events import EventStore, EventSummary

WATCHED = 4.0  # the rating of a `watched` or `completed` event
ABANDONED = 2.0  # the rating of an `abandoned` event
COLUMNS = ["userId", "movieId", "rating", "timestamp"]


@dataclass(frozen=True)
class Events:
    """The events the build read (as the store gives them) and their summary (count, latest received)."""

    frame: pd.DataFrame
    summary: EventSummary


def read_events(settings: Settings) -> Events:
    """Every stored event, read once (no events file: none)."""
    store = EventStore(settings.events_store_url)
    try:
        frame, summary = store.interactions()
    finally:
        store.close()
    return Events(frame, summary)


def user_ids(events: pd.Series, movielens: np.ndarray) -> pd.Series:
    """Each event's integer user id: the MovieLens user its id names, else a new id above the largest one."""
    known = set(movielens.tolist())
    names = sorted(set(events.tolist()))
    mapped = {u: int(u) for u in names if u.isascii() and u.isdigit() and int(u) in known}
    first = int(movielens.max()) + 1 if len(movielens) else 1
    mapped.update({u: first + i for i, u in enumerate(u for u in names if u not in mapped)})
    return events.map(mapped)


def fold_events(ratings: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """The ratings (userId, movieId, rating, timestamp) with the events folded in, as the module says."""
    if events.empty:
        return ratings
    rating = events["type"].map({"watched": WATCHED, "completed": WATCHED, "abandoned": ABANDONED})
    rating = rating.where(events["type"] != "rated", events["rating"])  # not_interested stays NaN
    folded = pd.DataFrame(
        {
            "userId": user_ids(events["user_id"], ratings["userId"].unique()).to_numpy(np.int64),
            "movieId": events["movie_id"].to_numpy(np.int64),
            "rating": rating.to_numpy(np.float64),
            "timestamp": events["at"].to_numpy(np.int64),
            "order": np.arange(1, len(events) + 1),  # after a MovieLens rating of the same second (order 0)
        }
    )
    folded["key"] = _pair_key(folded)
    viewers = ratings["userId"].isin(folded["userId"].unique()).to_numpy()
    touched = np.zeros(len(ratings), dtype=bool)
    touched[viewers] = np.isin(_pair_key(ratings.loc[viewers]), folded["key"].unique())
    earlier = ratings.loc[touched, COLUMNS].assign(order=0)
    pairs = pd.concat([earlier.assign(key=_pair_key(earlier)), folded], ignore_index=True)
    pairs = pairs.sort_values(["key", "timestamp", "order"], kind="stable", ignore_index=True)
    position = pd.Series(np.arange(len(pairs)))
    unwanted = position.where(pairs["rating"].isna(), -1).groupby(pairs["key"]).transform("max")
    kept = pairs.loc[position > unwanted].groupby("key", sort=False)
    merged = kept.agg(userId=("userId", "first"), movieId=("movieId", "first"), timestamp=("timestamp", "first"))
    merged["rating"] = kept["rating"].last()
    dtypes = ratings.dtypes[COLUMNS].to_dict()
    return pd.concat([ratings.loc[~touched, COLUMNS], merged[COLUMNS].astype(dtypes)], ignore_index=True)


def _pair_key(frame: pd.DataFrame) -> np.ndarray:
    """One int64 per (userId, movieId)."""
    return (frame["userId"].to_numpy(np.int64) << 32) | frame["movieId"].to_numpy(np.int64)
