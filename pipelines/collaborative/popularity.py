"""Recent popularity: the movies most rated in the last days before a cutoff."""

from __future__ import annotations

import pandas as pd

DAY_SECONDS = 86_400


def recent_popularity(ratings: pd.DataFrame, cutoff: int, days: float) -> dict[int, int]:
    """How many ratings each movie had in the `days` days strictly before `cutoff` (movies with none left out)."""
    stamps = ratings["timestamp"]
    recent = (stamps >= cutoff - days * DAY_SECONDS) & (stamps < cutoff)
    counts = ratings.loc[recent, "movieId"].value_counts()
    return {int(m): int(c) for m, c in counts.items()}
