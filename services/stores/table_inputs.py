"""What each neighbour table is computed from, as a fingerprint: the writer stores it, the reader checks it.

The inputs are the build-state digests of what the table was computed from (the vector collection, or the
model of the trained set its source reads), so a table follows its inputs when a build generation is
copied, and a table whose inputs changed since it was written (a new embedding run, a retrained model) is
not used: the runtime answers live instead, and the next `nextwatch build` rewrites it.
"""

from __future__ import annotations

from pathlib import Path

from services.settings import Settings
from services.stores.build_state import BuildState, fingerprint


def model_state_key(model: str, *, evaluation: bool) -> str:
    """The build-state entry of one model of a trained set ("full" or "evaluation")."""
    return f"models/{'evaluation' if evaluation else 'full'}/{model}"


def table_input(settings: Settings, model: str | None, *, evaluation: bool = False) -> str | None:
    """The fingerprint of a table computed from `model` of the served (or evaluation) set, or from the vector
    collection when `model` is None, with N; None when that input was never built."""
    key = settings.vectors_state_key if model is None else model_state_key(model, evaluation=evaluation)
    digest = BuildState(settings.build_dir).digest(key)
    return None if digest is None else fingerprint(model or "vector", digest, settings.neighbours)


def table_location(settings: Settings, name: str, model: str | None, *, evaluation: bool = False) -> tuple[Path, str]:
    """Where source `name`'s table lives (beside the model it is computed from, else in the build's neighbours
    directory) and its artifact key in the build state's checksums (that directory, relative, plus the name)."""
    directory = settings.models_dir(evaluation) / model if model else settings.neighbours_dir
    return directory, f"{directory.relative_to(settings.build_dir).as_posix()}/{name}"
