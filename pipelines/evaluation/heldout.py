"""Everything learned from ratings (ALS, popularity), trained only on ratings before a cutoff.

The evaluation build is this pair of models for the test window's cutoff, saved in ``als_eval/`` so that
`evaluate` reuses it and a service started with ``NEXTWATCH_SERVE_MODELS=evaluation`` serves exactly it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from pipelines.collaborative.als import train_als
from pipelines.state import BuildState, fingerprint
from services.settings import Settings
from services.stores.collaborative import ALSParams, CollaborativeModel
from services.stores.errors import ArtifactError
from services.stores.popularity import load_popularity, popularity_exists, save_popularity


@dataclass(frozen=True)
class HeldOutModels:
    """ALS and popularity counts, both from ratings strictly before `cutoff`."""

    collaborative: CollaborativeModel
    popularity: dict[int, int]
    cutoff: int


def popularity_before(ratings: pd.DataFrame, cutoff: int) -> dict[int, int]:
    """How many ratings each movie had strictly before `cutoff`."""
    counts = ratings.loc[ratings["timestamp"] < cutoff, "movieId"].value_counts()
    return {int(m): int(c) for m, c in counts.items()}


def train_before(ratings: pd.DataFrame, cutoff: int, params: ALSParams, *, progress: bool = False) -> HeldOutModels:
    """Train ALS and count popularity on ratings strictly before `cutoff` only."""
    history = ratings.loc[ratings["timestamp"] < cutoff]
    if history.empty:
        raise RuntimeError(f"no ratings before the cutoff {cutoff}: the window starts with the data")
    model = train_als(history, params, progress=progress)
    return HeldOutModels(model, popularity_before(ratings, cutoff), cutoff)


def evaluation_build(
    settings: Settings, ratings: pd.DataFrame, cutoff: int, params: ALSParams, *, progress: bool = False
) -> HeldOutModels:
    """The held-out models for `cutoff`, cached in ``settings.als_eval_dir`` by (ratings, cutoff, params)."""
    directory = settings.als_eval_dir
    state = BuildState(settings.resolved_data_dir)
    digest = fingerprint("als_eval", settings.ratings_path, cutoff, asdict(params))
    if CollaborativeModel.exists(directory) and popularity_exists(directory) and state.is_fresh("als_eval", digest):
        try:
            return HeldOutModels(CollaborativeModel.load(directory), load_popularity(directory), cutoff)
        except ArtifactError:  # a damaged cache: trained again below
            pass
    models = train_before(ratings, cutoff, params, progress=progress)
    models.collaborative.save(directory)
    save_popularity(directory, models.popularity, cutoff_timestamp=cutoff)
    state.mark("als_eval", digest)
    return models
