"""What each neighbour table is computed from, as a fingerprint: the writer stores it, the reader checks it.

A table whose inputs changed since it was written (a new embedding run, a retrained model) is not used:
the runtime answers live instead, and the next `nextwatch build` rewrites it.
"""
from __future__ import annotations

from pathlib import Path

from services.settings import Settings
from services.stores.build_state import BuildState, fingerprint


def vector_table_input(settings: Settings) -> str | None:
    """The vector collection's build fingerprint and N; None when the collection was never built."""
    digest = BuildState(settings.resolved_data_dir).digest(settings.vectors_state_key)
    return None if digest is None else fingerprint("vector", digest, settings.neighbours)


def model_table_input(name: str, model_file: Path, n: int) -> str | None:
    """A model file's identity (size, mtime) and N; None when the model was never saved."""
    return fingerprint(name, model_file, n) if model_file.is_file() else None
