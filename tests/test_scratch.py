"""Private temporary directories: those of a process killed with SIGKILL are removed by the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from services.stores.scratch import private_dir, remove_orphans

PREFIX = "nextwatch-test-"


@pytest.fixture(autouse=True)
def own_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_a_killed_owners_directory_goes_with_the_next_one(own_tmp: Path) -> None:
    code = (
        "import time; from services.stores.scratch import private_dir; "
        f"print(private_dir({PREFIX!r}), flush=True); time.sleep(60)"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(own_tmp)}
    )
    assert child.stdout is not None
    left = Path(child.stdout.readline().strip())
    (left / "shard").mkdir()
    (left / "shard" / "segment.dat").write_bytes(b"x" * 1000)
    assert left.name.startswith(f"{PREFIX}{child.pid}-")
    child.send_signal(signal.SIGKILL)
    child.wait()

    mine = private_dir(PREFIX)

    assert not left.exists()
    assert mine.is_dir() and mine.name.startswith(f"{PREFIX}{os.getpid()}-")


def test_only_the_dead_owners_directories_of_the_prefix_go(own_tmp: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)
    gone = own_tmp / f"{PREFIX}{dead}-abc"
    alive = own_tmp / f"{PREFIX}{os.getpid()}-def"
    other = own_tmp / f"nextwatch-other-{dead}-ghi"
    unnamed = own_tmp / f"{PREFIX}plain"
    for path in (gone, alive, other, unnamed):
        path.mkdir()

    assert remove_orphans(PREFIX) == [gone]
    assert not gone.exists() and alive.is_dir() and other.is_dir() and unnamed.is_dir()
