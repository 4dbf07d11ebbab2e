"""Which generations a build removes: a killed build's abandoned generation goes, the served generation and
the new one never do, the one served before stays for a rollback, and a build still running is left alone."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines import generations
from pipelines.data_lock import LOCK_NAME, writing
from services.settings import BUILDS, Settings
from services.stores.generations import current_generation, set_current
from services.stores.generations import generations as listed

OLDER, SERVED, ABANDONED = "20200101T000000", "20200102T000000", "20200103T000000"


def data_dir(tmp_path: Path) -> Settings:
    """A data dir serving SERVED, with OLDER (served before it) and ABANDONED (a build killed mid-way)."""
    settings = Settings(data_dir=tmp_path / "data")
    for generation in (OLDER, SERVED, ABANDONED):
        (settings.data_dir / BUILDS / generation).mkdir(parents=True)
        if generation != ABANDONED:
            generations.commit(settings, generation)
    (settings.data_dir / BUILDS / SERVED / "catalog.sqlite").write_bytes(b"")  # what the server has open
    return settings


@contextmanager
def another_writer(data: Path) -> Iterator[None]:
    """The data dir's writer lock held as another process holds it (its own open file)."""
    fd = os.open(data / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def test_a_build_after_a_killed_one_keeps_the_served_generation(tmp_path: Path) -> None:
    settings = data_dir(tmp_path)
    with writing(settings.data_dir, "build"):  # as `nextwatch build` runs it
        new = generations.begin(settings)
        assert listed(settings.data_dir) == [OLDER, SERVED, new]  # the abandoned one is gone at once
        generations.commit(settings, new)
    assert current_generation(settings.data_dir) == new
    assert listed(settings.data_dir) == [SERVED, new]  # the served one stays, for a rollback
    assert (settings.data_dir / BUILDS / SERVED / "catalog.sqlite").is_file()


def test_a_build_still_running_is_not_abandoned(tmp_path: Path) -> None:
    """A build run without the CLI's lock (steps.build from code) leaves a generation being built by the
    lock's holder alone; the generations switched in before are pruned as usual."""
    settings = data_dir(tmp_path)
    with another_writer(settings.data_dir):
        new = generations.begin(settings)
        generations.commit(settings, new)
    assert listed(settings.data_dir) == [SERVED, ABANDONED, new]
    newer = generations.begin(settings)  # no writer any more: the next switch drops it
    generations.commit(settings, newer)
    assert listed(settings.data_dir) == [new, newer]


def test_a_rolled_back_generation_is_not_abandoned(tmp_path: Path) -> None:
    """A generation switched in, then rolled back from (the pointer set to the one before), is no
    abandoned build, though it is newer than the served one."""
    settings = data_dir(tmp_path)
    new = generations.begin(settings)
    generations.commit(settings, new)
    set_current(settings.data_dir, SERVED)  # a rollback
    newer = generations.begin(settings)
    assert listed(settings.data_dir) == [SERVED, new, newer]
