"""What each neighbour table is computed from, as a fingerprint: the writer stores it, the reader checks it.

The inputs are the build-state digests of the steps that made them (the vector collection, the ALS model),
so a table follows its inputs when a build generation is copied, and a table whose inputs changed since it
was written (a new embedding run, a retrained model) is not used: the runtime answers live instead, and
the next `nextwatch build` rewrites it.
"""

from __future__ import annotations

from services.settings import Settings
from services.stores.build_state import BuildState, fingerprint

# the build-state entry of each ALS model directory's training run
MODEL_STEPS = {"als": "als", "als_eval": "als_eval"}


def vector_table_input(settings: Settings) -> str | None:
    """The vector collection's build fingerprint and N; None when the collection was never built."""
    digest = BuildState(settings.build_dir).digest(settings.vectors_state_key)
    return None if digest is None else fingerprint("vector", digest, settings.neighbours)


def model_table_input(settings: Settings, step: str) -> str | None:
    """The ALS training run's fingerprint (`step`: "als" served, "als_eval" evaluation) and N; None when
    that model was never trained."""
    digest = BuildState(settings.build_dir).digest(MODEL_STEPS[step])
    return None if digest is None else fingerprint("collaborative", digest, settings.neighbours)
