"""Private directories in the temporary directory that outlive no process for long.

A directory's name carries its owner's process id (``<prefix><pid>-<random>``). Its owner removes it when it
stops; one killed with SIGKILL cannot, so making a directory first removes those of the same prefix whose
owner is gone (a server's shard copy is hundreds of MB: a few kill -9s would fill the disk).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path


def private_dir(prefix: str) -> Path:
    """A new, empty directory of this process's own, after removing those of `prefix` whose owner is gone."""
    remove_orphans(prefix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def remove_orphans(prefix: str) -> list[Path]:
    """Remove the directories of `prefix` whose owner process is gone; returns them."""
    owned = re.compile(rf"{re.escape(prefix)}(\d+)-[^/]+")
    removed = []
    for path in Path(tempfile.gettempdir()).iterdir():
        match = owned.fullmatch(path.name)
        if match and path.is_dir() and not _alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    """Whether a process of this id exists (a reused id counts as alive: its directory is kept)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
