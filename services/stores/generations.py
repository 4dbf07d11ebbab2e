"""Build generations of the embedded default: each build is made in ``builds/<id>/`` beside the served one,
and the ``current`` pointer names the one that is served.

A generation holds everything a build derives from the inputs (the SQLite catalog, the embedded Qdrant
shard, the ALS models, the neighbour tables and their build state); the inputs stay at the top of the
data dir (ratings and movies parquet, source.json, TMDB checkpoints, the embedding cache, tuned.json).
The pointer is a one-line file replaced atomically (write, fsync, rename), so a reader sees the old
generation or the new one, never a mix. A data dir without a pointer has the flat layout of older
versions: everything at its top.
"""

from __future__ import annotations

import re
from pathlib import Path

from services.settings import BUILDS, Settings
from services.stores.atomic import write_text_atomic

CURRENT = "current"
_ID = re.compile(r"^\d{8}T\d{6}(-\d+)?$")  # 20261201T231500, or -2 when two builds start in one second


class GenerationError(RuntimeError):
    """The current pointer names no usable generation."""


def current_generation(data_dir: Path) -> str | None:
    """The id the pointer names, None in the flat layout; GenerationError when the pointer is damaged."""
    pointer = data_dir / CURRENT
    try:
        value = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not _ID.match(value) or not (data_dir / BUILDS / value).is_dir():
        raise GenerationError(
            f"{pointer} names no build generation ({value[:40]!r}): run `nextwatch build` (or point it at one "
            f"of {', '.join(generations(data_dir)) or 'none'})"
        )
    return value


def generations(data_dir: Path) -> list[str]:
    """Every generation directory, oldest first (ids sort by time)."""
    root = data_dir / BUILDS
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _ID.match(p.name))


def set_current(data_dir: Path, generation: str) -> None:
    """Point `current` at `generation` atomically."""
    write_text_atomic(data_dir / CURRENT, generation + "\n")


def resolve_generation(settings: Settings) -> Settings:
    """The settings pinned on the generation the pointer names now (read once, where a command or the server
    starts), so the paths below don't move with the pointer; settings that name one are returned as they are."""
    if settings.generation is not None:
        return settings
    return settings.model_copy(update={"generation": current_generation(settings.data_dir)})
