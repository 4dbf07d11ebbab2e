"""One function makes the trained model set: the build step (all ratings) and the evaluation build (ratings
before the test window) are the same call, without and with a cutoff.

Each model of the registry is trained into ``<set>/<model name>/`` only when its inputs (the ratings, the
cutoff, its parameters from the tuned settings, and for the served set the viewers' events: their count and
latest `received`) changed since it was saved, recorded in the build state as ``models/<set>/<model name>``.
The served set's models learn from the events folded into the ratings (pipelines/models/events.py); the
evaluation set is trained on MovieLens ratings only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.models.events import Events, fold_events
from services.recommender.registry import REGISTRY, ModelSpec
from services.settings import Settings
from services.stores.build_state import BuildState, fingerprint
from services.stores.checksums import damage, record
from services.stores.errors import ArtifactError
from services.stores.events import EventSummary
from services.stores.table_inputs import model_state_key

EVENTS = "events"  # the build-state note of the events the served set learned from: {"count", "latest"}
# how the models are saved, part of every model's inputs: a set saved otherwise (npz, by older versions) is
# stale and trained again by the next build
LAYOUT = "npy-mapped"


def model_inputs(settings: Settings, spec: ModelSpec, cutoff: int | None, events: EventSummary | None = None) -> str:
    """What a model of the set is trained from: the ratings, the cutoff, its (tuned) parameters, and the events
    it learns from (their count and latest `received`; none: the same fingerprint as without events), in the
    layout it is saved in."""
    params = spec.params(settings)
    learned = (events.count, events.latest) if events is not None and events.count and spec.events else None
    return fingerprint(
        spec.name,
        LAYOUT,
        settings.ratings_path,
        cutoff,
        asdict(params) if is_dataclass(params) and not isinstance(params, type) else params,
        *([] if learned is None else [learned]),
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
    events: Events | None = None,
    force: bool = False,
    progress: bool = True,
    slow: bool = True,
) -> dict[str, Any]:
    """Train every registered model on the ratings strictly before `cutoff` (all of them without one) into
    ``settings.models_dir(evaluation=cutoff is not None)``, each when its inputs changed or it is damaged (its
    files differ from the checksums recorded when they were written); returns {model name: its info} of the
    models (re)trained now (empty when all were up to date). Pass tuned settings (``Settings.with_tuned``).
    `events` (the served set only) are folded into the ratings of the models that learn from them. Without
    `slow`, the models marked slow in the registry are left as they are (a quick build)."""
    if events is not None and cutoff is not None:
        raise ValueError("the evaluation set is trained on MovieLens ratings only: no events with a cutoff")
    directory = settings.models_dir(evaluation=cutoff is not None)
    state = BuildState(settings.build_dir)
    before = ratings if cutoff is None else ratings.loc[ratings["timestamp"] < cutoff]
    if before.empty:
        raise RuntimeError(f"no ratings before the cutoff {cutoff}: the window starts with the data")
    folded: pd.DataFrame | None = None  # the ratings with the events, made when a model needs them
    trained: dict[str, Any] = {}
    for spec in REGISTRY.models.values():
        if spec.slow and not slow:
            continue
        digest = model_inputs(settings, spec, cutoff, None if events is None else events.summary)
        key = model_state_key(spec.name, evaluation=cutoff is not None)
        where = directory / spec.name
        if (
            not force
            and state.is_fresh(key, digest)
            and damage(settings.build_dir, key) is None
            and _readable(spec, where)
        ):
            continue
        data = before
        if events is not None and spec.events:
            folded = fold_events(ratings, events.frame) if folded is None else folded
            data = folded
        until = int(data["timestamp"].max()) + 1 if cutoff is None else cutoff
        model = resolve(spec.trainer)(data, spec.params(settings), cutoff=until, progress=progress)
        kept = _file_ids(where)
        model.save(where)
        record(settings.build_dir, key, [p for p, was in _file_ids(where).items() if kept.get(p) != was])
        state.mark(key, digest)
        trained[spec.name] = getattr(model, "info", {})
    if cutoff is None:
        seen = EventSummary(0, None, 0) if events is None else events.summary
        state.note(EVENTS, {"count": seen.count, "latest": None if seen.latest is None else seen.latest.isoformat()})
    return trained


def _file_ids(directory: Path) -> dict[Path, tuple[int, int]]:
    """Each file in `directory` by (inode, mtime): a save replaces the files it writes (a new inode each),
    so the ones that differ afterwards are the model's, not the tables kept beside it."""
    if not directory.is_dir():
        return {}
    return {p: (s.st_ino, s.st_mtime_ns) for p in directory.iterdir() if p.is_file() and (s := p.stat())}


def _readable(spec: ModelSpec, where: Path) -> bool:
    """Whether the model saved in `where` loads (a damaged one is trained again)."""
    try:
        spec.store.load(where)
    except (ArtifactError, OSError):
        return False
    return True


def stale_models(settings: Settings, cutoff: int | None = None, events: EventSummary | None = None) -> list[str]:
    """The models of the set whose saved state does not match their inputs (never trained, or changed);
    `events`: those stored now (the served set)."""
    state = BuildState(settings.build_dir)
    return [
        spec.name
        for spec in REGISTRY.models.values()
        if state.digest(model_state_key(spec.name, evaluation=cutoff is not None))
        != model_inputs(settings, spec, cutoff, events)
    ]
