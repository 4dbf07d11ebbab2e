"""Checksums of build artifacts: the step that writes an artifact records its files' sizes and digests in the
build state; readers (the server opening a generation, `nextwatch status`) verify them and never write.

An artifact is a key (a model of a trained set, ``models/full/als``, or a neighbour table,
``models/full/als/collaborative``) and the files its writer wrote, relative to the build generation. The
digest is BLAKE2b (16 bytes) over 1 MB chunks: about 700 MB/s on one core here (BENCHMARKS.md). An artifact
without recorded checksums (built by an older version) is trusted as before.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from services.stores.build_state import BuildState

CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """The BLAKE2b digest of a file's bytes (read in 1 MB chunks, opened read-only)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def record(build_dir: Path, key: str, files: Iterable[Path]) -> None:
    """Record the size and digest of each of `files` (the artifact `key`'s, all of them) in the build state."""
    entries = {
        path.relative_to(build_dir).as_posix(): {"size": path.stat().st_size, "blake2b": file_digest(path)}
        for path in sorted(files)
    }
    BuildState(build_dir).record_files(key, entries)


def damage(build_dir: Path, key: str, state: BuildState | None = None) -> str | None:
    """What is wrong with the artifact `key`'s files (the first damaged one, and how), None when each has the
    size and digest its writer recorded (or none were recorded, or none of them is there: an artifact that
    was removed whole is missing, not damaged, and its readers say so)."""
    recorded = (state or BuildState(build_dir)).files(key)
    present = {name: build_dir / name for name in recorded if (build_dir / name).is_file()}
    if not present:
        return None
    for name, entry in recorded.items():
        if name not in present:
            return f"{name} is missing"
        size = os.stat(present[name]).st_size
        if size != entry["size"]:  # cheap: a cut-short or grown file is found without reading it
            return f"{name} is {size:,} bytes, {entry['size']:,} when written"
        if file_digest(present[name]) != entry["blake2b"]:
            return f"{name} differs from what was written (checksum)"
    return None


def damaged(build_dir: Path, select: Callable[[str], bool] = lambda key: True) -> dict[str, str]:
    """Every recorded artifact of the generation (whose key `select` picks) that is damaged: key -> what is
    wrong."""
    state = BuildState(build_dir)
    found = {key: damage(build_dir, key, state) for key in state.artifacts() if select(key)}
    return {key: problem for key, problem in found.items() if problem is not None}
