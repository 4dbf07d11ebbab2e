"""One writer per data dir: the commands that change it hold an exclusive lock while they run.

Two builds, a build and a `tmdb fetch`, or a `train` during a `build`, would otherwise write the same
checkpoint, catalog and generation at once. The lock is ``flock`` on ``<data dir>/.nextwatch.lock``: the
kernel drops it when its holder exits, even under kill -9, so a crash never leaves the data dir locked.
The file names the holder, for the message the second command prints. Readers (`serve`, `status`,
`evaluate --through-api`) do not take it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".nextwatch.lock"


class DataDirBusy(RuntimeError):
    """Another command is writing to the data dir."""


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
        data_dir.mkdir(parents=True)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
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
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
