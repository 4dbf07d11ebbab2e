"""Build generations: a build is made in a new ``builds/<id>/`` (a copy of the served one, updated by
the steps that have something to do) and switched in whole when every step succeeded.

A running server keeps reading the generation it has until the pointer moves (it reloads then); a build
that fails or is killed leaves the served generation as it was. The last `KEEP` generations are kept.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from services.settings import BUILDS, Settings
from services.stores.generations import current_generation, generations, resolve_generation, set_current

log = logging.getLogger(__name__)
KEEP = 2  # the served generation and the one before it
# what a generation holds (in the flat layout these sit at the top of the data dir)
DERIVED = ("catalog.sqlite", "qdrant", "models", "neighbours", "build_state.json")


def begin(settings: Settings) -> str:
    """A new generation directory holding a copy of the served build's artifacts; returns its id."""
    data_dir = settings.data_dir
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    taken = set(generations(data_dir))
    generation = next(g for g in (stamp, *(f"{stamp}-{i}" for i in range(2, 1000))) if g not in taken)
    target = data_dir / BUILDS / generation
    target.mkdir(parents=True)
    source = resolve_generation(settings).build_dir
    for name in DERIVED:
        _copy(source / name, target / name)
    return generation


def commit(settings: Settings, generation: str) -> None:
    """Serve `generation` (atomic pointer switch), then drop all but the last `KEEP` generations and
    the flat layout's artifacts, which the first generation copied."""
    data_dir = settings.data_dir
    flat = current_generation(data_dir) is None
    set_current(data_dir, generation)
    for old in generations(data_dir)[:-KEEP]:
        shutil.rmtree(data_dir / BUILDS / old, ignore_errors=True)
    if flat:  # the top-level build state stays: it also remembers the ingest (an input)
        for name in DERIVED:
            if name != "build_state.json":
                _remove(data_dir / name)
    log.info("serving build generation %s", generation)


def discard(settings: Settings, generation: str) -> None:
    """Remove a generation that was not switched in (failed, or nothing changed)."""
    shutil.rmtree(settings.data_dir / BUILDS / generation, ignore_errors=True)


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.tmp", ".*.tmp"))
    elif source.suffix == ".sqlite" and source.is_file():
        with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
            src.backup(dst)  # a consistent snapshot even while a server reads it
    elif source.is_file():
        shutil.copy2(source, target)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if extra.exists():
            extra.unlink()
