"""Files that appear whole or not at all: written under a temporary name, fsynced, renamed into place.

The temporary name is fixed (``.<name>.tmp`` beside the file), so a write killed half-way leaves one
stale temporary that the next write of the same file overwrites and renames away.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_name(final: Path) -> Path:
    """Where `final` is written before it is renamed into place."""
    return final.with_name(f".{final.name}.tmp")


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """A temporary path next to `final`; when the block succeeds it is fsynced and renamed onto `final`."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(final)
    try:
        yield tmp
        fsync(tmp)
        os.replace(tmp, final)
        fsync(final.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def fsync(path: Path) -> None:
    """Flush a file's data, or a directory's entries (a rename or unlink in it), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
