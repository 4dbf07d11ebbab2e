"""One function makes the trained model set: the build step (all ratings) and the evaluation build (ratings
before the test window) are the same call, without and with a cutoff.

Each model of the registry is trained into ``<set>/<model name>/`` only when its inputs (the ratings, the
cutoff, its parameters from the tuned settings) changed since it was saved, recorded in the build state
as ``models/<set>/<model name>``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from services.recommender.registry import REGISTRY, ModelSpec
from services.settings import Settings
from services.stores.build_state import BuildState, fingerprint
from services.stores.errors import ArtifactError
from services.stores.table_inputs import model_state_key


def model_inputs(settings: Settings, spec: ModelSpec, cutoff: int | None) -> str:
    """What a model of the set is trained from: the ratings, the cutoff and its (tuned) parameters."""
    params = spec.params(settings)
    return fingerprint(
        spec.name,
        settings.ratings_path,
        cutoff,
        asdict(params) if is_dataclass(params) and not isinstance(params, type) else params,
    )


def resolve(reference: str) -> Callable[..., Any]:
    """The function a registry entry names as ``"module:function"``."""
    module, _, name = reference.partition(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return found


def train_model_set(
    settings: Settings,
    ratings: pd.DataFrame,
    *,
    cutoff: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train every registered model on the ratings strictly before `cutoff` (all of them without one) into
    ``settings.models_dir(evaluation=cutoff is not None)``; returns {model name: its info} of the models
    (re)trained now (empty when all were up to date). Pass tuned settings (``Settings.with_tuned``)."""
    directory = settings.models_dir(evaluation=cutoff is not None)
    state = BuildState(settings.build_dir)
    before = ratings if cutoff is None else ratings.loc[ratings["timestamp"] < cutoff]
    if before.empty:
        raise RuntimeError(f"no ratings before the cutoff {cutoff}: the window starts with the data")
    until = int(ratings["timestamp"].max()) + 1 if cutoff is None else cutoff
    trained: dict[str, Any] = {}
    for spec in REGISTRY.models.values():
        digest = model_inputs(settings, spec, cutoff)
        key = model_state_key(spec.name, evaluation=cutoff is not None)
        where = directory / spec.name
        if not force and state.is_fresh(key, digest) and _readable(spec, where):
            continue
        model = resolve(spec.trainer)(before, spec.params(settings), cutoff=until, progress=progress)
        model.save(where)
        state.mark(key, digest)
        trained[spec.name] = getattr(model, "info", {})
    return trained


def _readable(spec: ModelSpec, where: Path) -> bool:
    """Whether the model saved in `where` loads (a damaged one is trained again)."""
    try:
        spec.store.load(where)
    except (ArtifactError, OSError):
        return False
    return True


def stale_models(settings: Settings, cutoff: int | None = None) -> list[str]:
    """The models of the set whose saved state does not match their inputs (never trained, or changed)."""
    state = BuildState(settings.build_dir)
    return [
        spec.name
        for spec in REGISTRY.models.values()
        if state.digest(model_state_key(spec.name, evaluation=cutoff is not None))
        != model_inputs(settings, spec, cutoff)
    ]
