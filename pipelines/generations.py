"""Build generations: a build is made in a new ``builds/<id>/`` (a copy of the served one, updated by
the steps that have something to do) and switched in whole when every step succeeded.

A running server keeps reading the generation it has until the pointer moves (it reloads then); a build
that fails or is killed leaves the served generation as it was. A switch keeps the new generation and the
one served before it (for a rollback); every other one goes, the abandoned ones too: generations whose
build was killed before its switch and is no longer running (no other writer holds the data lock).
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from pipelines.data_lock import writer_elsewhere
from services.serving.experiments import pinned_generations
from services.settings import BUILDS, Settings
from services.stores.checksums import stamp
from services.stores.generations import current_generation, generations, resolve_generation, set_current

log = logging.getLogger(__name__)
COMMITTED = ".committed"  # written into a generation when it is switched in
# what a generation holds (in the flat layout these sit at the top of the data dir)
DERIVED = ("catalog.sqlite", "qdrant", "models", "neighbours", "build_state.json")


def begin(settings: Settings) -> str:
    """A new generation directory holding a copy of the served build's artifacts; returns its id. The
    abandoned generations of killed builds are removed first."""
    data_dir = settings.data_dir
    served = current_generation(data_dir)
    if served is not None and not writer_elsewhere(data_dir):
        for abandoned in generations(data_dir):  # a build's generation is newer than the one it copied
            if abandoned > served and not _committed(data_dir, abandoned):
                discard(settings, abandoned)
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
    """Serve `generation` (atomic pointer switch), then drop every generation but it, the one served until
    now and those an experiment pins (an uncommitted one only when no other writer runs: it may be that
    writer's build), and the
    flat layout's artifacts, which the first generation copied. Its artifacts' files are verified first and
    recorded as seen (the copied ones are new files), so the servers that open it read none of them again."""
    data_dir = settings.data_dir
    served = current_generation(data_dir)
    stamp(data_dir / BUILDS / generation)
    (data_dir / BUILDS / generation / COMMITTED).touch()
    set_current(data_dir, generation)
    building = writer_elsewhere(data_dir)
    kept = {generation, served, *pinned_generations(settings.experiments)}
    for old in generations(data_dir):
        if old not in kept and (not building or _committed(data_dir, old)):
            discard(settings, old)
    if served is None:  # the top-level build state stays: it also remembers the ingest (an input)
        for name in DERIVED:
            if name != "build_state.json":
                _remove(data_dir / name)
    log.info("serving build generation %s", generation)


def discard(settings: Settings, generation: str) -> None:
    """Remove a generation: one not switched in (failed, abandoned, or nothing changed), or no longer kept."""
    shutil.rmtree(settings.data_dir / BUILDS / generation, ignore_errors=True)


def _committed(data_dir: Path, generation: str) -> bool:
    return (data_dir / BUILDS / generation / COMMITTED).exists()


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
