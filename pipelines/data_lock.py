"""One writer per data dir: the commands that change it hold an exclusive lock while they run.

Two builds, a build and a `tmdb fetch`, or a `train` during a `build`, would otherwise write the same
checkpoint, catalog and generation at once. The lock is ``flock`` on ``<data dir>/.nextwatch.lock``: the
kernel drops it when its holder exits, even under kill -9, so a crash never leaves the data dir locked.
The file names the holder, for the message the second command prints. Readers (`serve`, `status`,
`evaluate --through-api`) do not take it, and a read-only data dir stops a writer in one line.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".nextwatch.lock"
_HELD: set[Path] = set()  # the data dirs whose lock this process holds


class DataDirBusy(RuntimeError):
    """Another command is writing to the data dir."""


class DataDirNotWritable(RuntimeError):
    """The data dir is read-only (a read-only volume, or no write permission): writers cannot run."""


@contextmanager
def writing(data_dir: Path, command: str, *, create: bool = False) -> Iterator[None]:
    """Hold the data dir's writer lock for the block; DataDirBusy naming the holder when it is taken.

    A data dir that does not exist is made first with `create` (the commands that start one); without
    it the block runs unlocked, as there is nothing yet to protect (and a failing command leaves nothing).
    """
    if not data_dir.is_dir():
        if not create:
            yield
            return
        with _refusal_is_read_only(data_dir):
            data_dir.mkdir(parents=True)
    with _refusal_is_read_only(data_dir):
        if not os.access(data_dir, os.W_OK):  # as root only a read-only volume refuses
            raise PermissionError(errno.EACCES, "not writable")
        fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    held = data_dir.resolve()
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another nextwatch command"
            raise DataDirBusy(
                f"{holder} is writing to {data_dir}: wait for it to finish, then run `nextwatch {command}` again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"`nextwatch {command}` (pid {os.getpid()})".encode(), 0)
        _HELD.add(held)
        try:
            yield
        finally:
            _HELD.discard(held)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def writer_elsewhere(data_dir: Path) -> bool:
    """Whether another process (or another lock of this one) is writing to the data dir now."""
    if data_dir.resolve() in _HELD:
        return False
    try:
        fd = os.open(data_dir / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # released by the close below
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextmanager
def _refusal_is_read_only(data_dir: Path) -> Iterator[None]:
    """A refusal to write (permissions, a read-only volume) inside the block as DataDirNotWritable."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise DataDirNotWritable(f"data dir not writable: {data_dir}") from None
        raise
