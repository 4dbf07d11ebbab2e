"""MovieLens releases cut from the bundled sample, in the GroupLens CSV layout."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# Series members that must stay in the small release so series strategies have something to find.
KEEP_TITLES = ("Toy Story", "Toy Story 2", "Toy Story 3", "Godfather, The", "Godfather: Part II, The")


def write_release(sample: pd.DataFrame, out: Path, top_movies: int) -> Path:
    """Write a GroupLens-format CSV release of the sample's `top_movies` most-rated movies (plus a few series)."""
    keep = set(sample["movieId"].value_counts().head(top_movies).index)
    keep |= set(sample.loc[sample["title"].isin(KEEP_TITLES), "movieId"])
    part = sample.loc[sample["movieId"].isin(keep)]
    part[["userId", "movieId", "rating", "timestamp"]].to_csv(out / "ratings.csv", index=False)
    movies = part.drop_duplicates("movieId")[["movieId", "title", "year", "genres"]].copy()
    movies["title"] = movies["title"] + movies["year"].map(lambda y: f" ({int(y)})" if pd.notna(y) else "")
    movies[["movieId", "title", "genres"]].to_csv(out / "movies.csv", index=False)
    return out
