"""Checksums of build artifacts: the step that writes an artifact records its files' sizes and digests in the
build state; readers (the server opening a generation, `nextwatch status`) verify them and never write.

An artifact is a key (a model of a trained set, ``models/full/als``, or a neighbour table,
``models/full/als/collaborative``) and the files its writer wrote, relative to the build generation. The
digest is BLAKE2b (16 bytes) over 1 MB chunks: about 700 MB/s on one core here (BENCHMARKS.md). An artifact
without recorded checksums (built by an older version) is trusted as before.

Verified once per generation: with each digest the writer records the file as it saw it (``seen``: inode,
modification and change times, in ns). A reader checks every file's size, and reads it in full only when it
is not the file seen then; a file changed in place has a new change time (``utime`` can restore the
modification time, never the change time), a replaced one a new inode. `nextwatch status` reads every file.
A file is recorded as seen only once its change time is older than the filesystem's timestamp granularity
(``_settle``), so a change made right after the record cannot carry the same times.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from services.stores.build_state import BuildState

CHUNK = 1 << 20
# two kernel ticks at the coarsest (HZ=100): timestamps of a filesystem with sub-second times are at most
# this far behind the clock; one with whole-second times (ctime a whole second) gets two seconds
_FINE_NS = 20_000_000
_COARSE_NS = 2_000_000_000


def file_digest(path: Path) -> str:
    """The BLAKE2b digest of a file's bytes (read in 1 MB chunks, opened read-only)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _seen(stat: os.stat_result) -> dict[str, int]:
    """What identifies a file's version without reading it: its inode and its modification and change times."""
    return {"inode": stat.st_ino, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns}


def _margin(stat: os.stat_result) -> int:
    return _COARSE_NS if stat.st_ctime_ns % 1_000_000_000 == 0 else _FINE_NS


def _settle(paths: Iterable[Path]) -> None:
    """Wait (up to two seconds) until the files' change times are older than their timestamp granularity."""
    wait = max((s.st_ctime_ns + _margin(s) - time.time_ns() for s in map(os.stat, paths)), default=0)
    if wait > 0:
        time.sleep(min(wait, _COARSE_NS) / 1e9)


def _entry(path: Path, blake2b: str, stat: os.stat_result, now: int) -> dict[str, Any]:
    """A file's recorded checksum, with how it was seen when the change time was settled at `now`."""
    entry: dict[str, Any] = {"size": stat.st_size, "blake2b": blake2b}
    if stat.st_ctime_ns < now - _margin(stat):
        entry["seen"] = _seen(stat)
    return entry


def record(build_dir: Path, key: str, files: Iterable[Path]) -> None:
    """Record the size and digest of each of `files` (the artifact `key`'s, all of them) in the build state,
    with each file as seen when its digest was read."""
    paths = sorted(files)
    _settle(paths)
    entries = {}
    for path in paths:
        now, stat = time.time_ns(), os.stat(path)
        entries[path.relative_to(build_dir).as_posix()] = _entry(path, file_digest(path), stat, now)
    BuildState(build_dir).record_files(key, entries)


def stamp(build_dir: Path) -> None:
    """Read in full every recorded file not seen as it is now (the files of a copied generation are new
    inodes) and record it as seen when it has its recorded size and digest; a damaged file is left for its
    readers to find."""
    state = BuildState(build_dir)
    for key in state.artifacts():
        recorded = state.files(key)
        present = [name for name in recorded if (build_dir / name).is_file()]
        unseen = [name for name in present if recorded[name].get("seen") != _seen(os.stat(build_dir / name))]
        _settle(build_dir / name for name in unseen)
        entries = dict(recorded)
        for name in unseen:
            path, entry = build_dir / name, recorded[name]
            now, stat = time.time_ns(), os.stat(path)
            if stat.st_size == entry["size"] and file_digest(path) == entry["blake2b"]:
                entries[name] = _entry(path, entry["blake2b"], stat, now)
        if entries != recorded:
            state.record_files(key, entries)


def damage(build_dir: Path, key: str, state: BuildState | None = None, *, full: bool = False) -> str | None:
    """What is wrong with the artifact `key`'s files (the first damaged one, and how), None when each has the
    size and digest its writer recorded (or none were recorded, or none of them is there: an artifact that
    was removed whole is missing, not damaged, and its readers say so). A file seen by its writer as it is now
    is not read again unless `full`."""
    recorded = (state or BuildState(build_dir)).files(key)
    present = {name: build_dir / name for name in recorded if (build_dir / name).is_file()}
    if not present:
        return None
    for name, entry in recorded.items():
        if name not in present:
            return f"{name} is missing"
        stat = os.stat(present[name])
        if stat.st_size != entry["size"]:  # cheap: a cut-short or grown file is found without reading it
            return f"{name} is {stat.st_size:,} bytes, {entry['size']:,} when written"
        if not full and entry.get("seen") == _seen(stat):
            continue
        if file_digest(present[name]) != entry["blake2b"]:
            return f"{name} differs from what was written (checksum)"
    return None


def damaged(build_dir: Path, select: Callable[[str], bool] = lambda key: True) -> dict[str, str]:
    """Every recorded artifact of the generation (whose key `select` picks) that is damaged, every file read
    in full: key -> what is wrong."""
    state = BuildState(build_dir)
    found = {key: damage(build_dir, key, state, full=True) for key in state.artifacts() if select(key)}
    return {key: problem for key, problem in found.items() if problem is not None}
