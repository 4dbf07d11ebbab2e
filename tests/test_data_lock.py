"""One writer per data dir: a second writing command stops in one line naming the first; readers go on;
a writer killed with SIGKILL leaves the data dir unlocked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.data_lock import DataDirBusy, writing
from tests.test_cli_errors import fails

WRITERS = {
    "ingest": ["ingest", "--quiet"],
    "catalog": ["catalog"],
    "embed": ["embed", "--quiet"],
    "train": ["train", "--quiet"],
    "neighbours": ["neighbours"],
    "build": ["build", "--quiet"],
    "tune": ["tune"],
    "evaluate": ["evaluate", "--quiet"],
    "tmdb fetch": ["tmdb", "fetch", "--quiet"],
    "tmdb collections": ["tmdb", "collections", "--quiet"],
    "tmdb import": ["tmdb", "import", "DUMP"],
    "tmdb repair": ["tmdb", "repair"],
}


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("NEXTWATCH_DATABASE_URL", "NEXTWATCH_QDRANT_URL"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "데이터"
    data.mkdir()
    monkeypatch.setenv("NEXTWATCH_DATA_DIR", str(data))
    monkeypatch.setenv("TMDB_READ_ACCESS_TOKEN", "not-a-real-token")
    (tmp_path / "dump.jsonl").write_text("", encoding="utf-8")
    return data


def contents(data_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(data_dir)): p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_a_second_writer_stops_in_one_line_naming_the_first(data_dir: Path, command: str) -> None:
    """Each writer on a data dir whose preconditions hold as far as the lock (a catalog file for the TMDB
    commands, a checkpoint for repair) stops at the lock, before writing anything."""
    args = [str(data_dir.parent / "dump.jsonl") if a == "DUMP" else a for a in WRITERS[command]]
    (data_dir / "tmdb").mkdir()
    (data_dir / "catalog.sqlite").touch()
    (data_dir / "tmdb" / "movies.jsonl").write_text('{"tmdb_id": 862, "status": "ok"}\n', encoding="utf-8")
    with writing(data_dir, "build"):
        before = contents(data_dir)
        line = fails(CliRunner().invoke(app, args), f"`nextwatch build` (pid {os.getpid()}) is writing to {data_dir}")
        assert f"run `nextwatch {command}` again" in line
        assert contents(data_dir) == before  # nothing was written


def test_the_lock_makes_a_missing_data_dir_only_for_a_command_that_starts_one(data_dir: Path) -> None:
    data_dir.rmdir()
    with writing(data_dir, "train"):
        assert not data_dir.exists()
    with writing(data_dir, "ingest", create=True), pytest.raises(DataDirBusy), writing(data_dir, "build"):
        pass


def test_readers_are_not_stopped(data_dir: Path) -> None:
    with writing(data_dir, "build"):
        result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output


def test_the_lock_is_released_when_the_block_ends_or_fails(data_dir: Path) -> None:
    with pytest.raises(KeyError), writing(data_dir, "train"):
        raise KeyError("실패")
    with (
        writing(data_dir, "build"),
        pytest.raises(DataDirBusy, match=r"`nextwatch build` \(pid \d+\)"),
        writing(data_dir, "train"),
    ):
        pass
    with writing(data_dir, "train"):
        pass


def test_a_writer_killed_with_sigkill_leaves_the_data_dir_unlocked(data_dir: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from pipelines.data_lock import writing\n"
            "with writing(Path(sys.argv[1]), 'tmdb fetch'):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(120)\n",
            str(data_dir),
        ],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        busy = rf"`nextwatch tmdb fetch` \(pid {holder.pid}\) is writing"
        with pytest.raises(DataDirBusy, match=busy), writing(data_dir, "build"):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with writing(data_dir, "build"):
        pass
