"""Everything learned from ratings (ALS, sequential, popularity), trained only on ratings before a cutoff.

The evaluation build is this set of models for the test window's cutoff, saved in ``als_eval/`` so that
`evaluate` reuses it and a service started with ``NEXTWATCH_SERVE_MODELS=evaluation`` serves exactly it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from pipelines.collaborative.als import train_als
from pipelines.collaborative.popularity import recent_popularity
from pipelines.collaborative.sequential import build_sequential
from services.settings import Settings
from services.stores.build_state import BuildState, fingerprint
from services.stores.collaborative import ALSParams, CollaborativeModel
from services.stores.errors import ArtifactError
from services.stores.popularity import RECENT_FILE_NAME, load_popularity, popularity_exists, save_popularity
from services.stores.sequential import SequentialModel, SequentialParams


@dataclass(frozen=True)
class HeldOutModels:
    """ALS, the sequential model, popularity and recent popularity, all from ratings before `cutoff`."""

    collaborative: CollaborativeModel
    sequential: SequentialModel
    popularity: dict[int, int]
    recent_popularity: dict[int, int]
    cutoff: int


@dataclass(frozen=True)
class LearnedParams:
    """How every model learned from ratings is trained (one object from the settings, tuned or not)."""

    als: ALSParams
    sequential: SequentialParams
    recent_days: float

    @classmethod
    def from_settings(cls, settings: Settings) -> LearnedParams:
        return cls(
            ALSParams.from_settings(settings), SequentialParams.from_settings(settings), settings.recent_popular_days
        )


def popularity_before(ratings: pd.DataFrame, cutoff: int) -> dict[int, int]:
    """How many ratings each movie had strictly before `cutoff`."""
    counts = ratings.loc[ratings["timestamp"] < cutoff, "movieId"].value_counts()
    return {int(m): int(c) for m, c in counts.items()}


def train_before(ratings: pd.DataFrame, cutoff: int, params: LearnedParams, *, progress: bool = False) -> HeldOutModels:
    """Train ALS and the sequential model and count popularity on ratings strictly before `cutoff` only."""
    history = ratings.loc[ratings["timestamp"] < cutoff]
    if history.empty:
        raise RuntimeError(f"no ratings before the cutoff {cutoff}: the window starts with the data")
    return HeldOutModels(
        collaborative=train_als(history, params.als, progress=progress),
        sequential=build_sequential(history, params.sequential),
        popularity=popularity_before(ratings, cutoff),
        recent_popularity=recent_popularity(ratings, cutoff, params.recent_days),
        cutoff=cutoff,
    )


def evaluation_build(
    settings: Settings, ratings: pd.DataFrame, cutoff: int, params: LearnedParams, *, progress: bool = False
) -> HeldOutModels:
    """The held-out models for `cutoff`, cached in ``settings.als_eval_dir`` by (ratings, cutoff, params)."""
    directory = settings.als_eval_dir
    state = BuildState(settings.build_dir)
    digest = fingerprint("als_eval", settings.ratings_path, cutoff, asdict(params))
    sequential_dir = directory / "sequential"
    if (
        CollaborativeModel.exists(directory)
        and SequentialModel.exists(sequential_dir)
        and popularity_exists(directory)
        and popularity_exists(directory, RECENT_FILE_NAME)
        and state.is_fresh("als_eval", digest)
    ):
        try:
            return HeldOutModels(
                CollaborativeModel.load(directory),
                SequentialModel.load(sequential_dir),
                load_popularity(directory),
                load_popularity(directory, RECENT_FILE_NAME),
                cutoff,
            )
        except ArtifactError:  # a damaged cache: trained again below
            pass
    models = train_before(ratings, cutoff, params, progress=progress)
    models.collaborative.save(directory)
    models.sequential.save(sequential_dir)
    save_popularity(directory, models.popularity, cutoff_timestamp=cutoff)
    save_popularity(directory, models.recent_popularity, cutoff_timestamp=cutoff, name=RECENT_FILE_NAME)
    state.mark("als_eval", digest)
    return models
