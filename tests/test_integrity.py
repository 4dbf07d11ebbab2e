"""Immutable generations and checksums: a damaged artifact is found, reported and never served; a table cut
short under a running server leaves a traceback, and the restarted server answers live."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from pipelines import steps
from pipelines.status import status_lines
from services.serving.runtime import open_runtime
from services.settings import Settings
from services.stores import checksums
from services.stores.build_state import BuildState
from services.stores.checksums import damage, record, stamp
from services.stores.generations import resolve_generation
from services.stores.neighbours import load_table
from tests.support.servers import free_port, private_copy, running_server

ROOT = Path(__file__).resolve().parents[1]
IDS = "models/full/als/collaborative.ids.npy"  # the ALS neighbour table's ids (memory-mapped when served)


@pytest.fixture
def settings(built_settings: Settings, tmp_path: Path) -> Settings:
    same = {name: built_settings.flat(name) for name in ("als_factors", "als_iterations")}
    return resolve_generation(private_copy(built_settings, tmp_path / "data", source=built_settings.source, **same))


def _files(root: Path) -> set[Path]:
    """Every file under `root` (but SQLite's own -wal and -shm beside an opened catalog)."""
    return {p for p in root.rglob("*") if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def test_checksums_find_a_same_size_overwrite_and_a_cut_and_create_nothing(tmp_path: Path) -> None:
    artifact = tmp_path / "models" / "a.npy"
    artifact.parent.mkdir()
    np.save(artifact, np.arange(1000, dtype=np.int64))
    record(tmp_path, "models/a", [artifact])
    files = _files(tmp_path)
    assert damage(tmp_path, "models/a") is None and damage(tmp_path, "never/recorded") is None
    data = bytearray(artifact.read_bytes())
    data[500:600] = b"\xff" * 100
    artifact.write_bytes(bytes(data))
    assert "differs from what was written" in str(damage(tmp_path, "models/a"))
    os.truncate(artifact, 100)
    assert "is 100 bytes, 8,128 when written" in str(damage(tmp_path, "models/a"))
    assert _files(tmp_path) == files  # readers create nothing
    artifact.unlink()
    assert damage(tmp_path, "models/a") is None  # removed whole: missing (its readers say so), not damaged


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files whose digest is computed from now on."""
    reads: list[Path] = []
    digest = checksums.file_digest

    def counted(path: Path) -> str:
        reads.append(path)
        return digest(path)

    monkeypatch.setattr(checksums, "file_digest", counted)
    return reads


def test_a_file_seen_by_its_writer_is_not_read_again_but_a_change_in_place_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact = tmp_path / "models" / "a.npy"
    artifact.parent.mkdir()
    np.save(artifact, np.arange(1000, dtype=np.int64))
    record(tmp_path, "models/a", [artifact])
    reads = _reads(monkeypatch)
    assert damage(tmp_path, "models/a") is None and reads == []  # what every open of the generation does
    assert damage(tmp_path, "models/a", full=True) is None and reads == [artifact]  # `nextwatch status`
    before = artifact.stat()
    with open(artifact, "r+b") as handle:  # same inode, same size
        handle.seek(500)
        handle.write(b"\xff" * 8)
    os.utime(artifact, ns=(before.st_atime_ns, before.st_mtime_ns))  # the modification time put back
    assert "differs from what was written" in str(damage(tmp_path, "models/a"))


def test_a_copied_generation_is_read_until_stamped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    artifact = tmp_path / "a" / "models" / "a.npy"
    artifact.parent.mkdir(parents=True)
    np.save(artifact, np.arange(1000, dtype=np.int64))
    record(tmp_path / "a", "models/a", [artifact])
    copy = tmp_path / "b"
    subprocess.run(["cp", "-a", str(tmp_path / "a"), str(copy)], check=True)  # times kept, new inodes
    reads = _reads(monkeypatch)
    assert damage(copy, "models/a") is None and len(reads) == 1
    stamp(copy)
    assert len(reads) == 2 and "seen" in BuildState(copy).files("models/a")["models/a.npy"]
    assert damage(copy, "models/a") is None and len(reads) == 2
    (copy / "models" / "a.npy").write_bytes(artifact.read_bytes()[:-8] + b"\xff" * 8)
    stamp(copy)  # a damaged file is not recorded as seen: its readers find it
    assert "differs from what was written" in str(damage(copy, "models/a"))


def test_a_silently_corrupted_table_is_reported_and_answered_live(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = settings.build_dir / IDS
    table = load_table(path.parent, "collaborative")
    assert table is not None
    movie = int(table.movie_ids[-1])
    data = bytearray(path.read_bytes())
    start = len(data) // 2
    data[start : start + 40_000] = np.full(10_000, 118479435, dtype=np.int32).tobytes()  # same size
    path.write_bytes(bytes(data))
    lines = "\n".join(status_lines(settings))
    assert f"damaged: {IDS} differs from what was written" in lines and "next: run `nextwatch build`" in lines
    files = _files(settings.data_dir)
    with running_server(settings.updated(reload_poll_seconds=0)) as url:
        ready = httpx.get(f"{url}/ready")
        assert ready.status_code == 503
        assert ready.json()["parts"]["collaborative"].startswith("damaged table, answered live")
        answer = httpx.get(f"{url}/movies/{movie}/recommendations", params={"strategy": "collaborative", "k": 50})
        assert answer.status_code == 200
        items = answer.json()["items"]
        assert len(items) == 50 and all(item["title"] and item["movie_id"] != 118479435 for item in items)
    assert _files(settings.data_dir) == files  # the server verified without creating anything
    steps.build(settings.model_copy(update={"generation": None}), progress=False)  # a new generation
    assert "all up to date" in "\n".join(status_lines(settings.model_copy(update={"generation": None})))
    served = resolve_generation(settings.model_copy(update={"generation": None})).build_dir
    reads = _reads(monkeypatch)  # the build verified its generation once: opening it reads no artifact
    assert not any(damage(served, key) for key in BuildState(served).artifacts()) and reads == []


@pytest.mark.parametrize("name", ["model.item_factors.npy", "model.json"])
def test_a_damaged_model_is_named_by_status_and_its_source_degrades(settings: Settings, name: str) -> None:
    path = settings.build_dir / "models" / "full" / "als" / name
    os.truncate(path, path.stat().st_size // 2)
    lines = "\n".join(status_lines(settings))
    assert f"damaged: models/full/als/{name} is" in lines and lines.endswith("next: run `nextwatch build`")
    runtime = open_runtime(settings, serving=True)
    try:
        assert "collaborative" in runtime.missing and runtime.damaged["collaborative"].startswith("damaged (")
        assert "als" not in runtime.models
    finally:
        runtime.close()
    unpinned = settings.model_copy(update={"generation": None})
    assert steps.build(unpinned, progress=False)["train"] is not None  # only the damaged model is retrained
    assert "all up to date" in "\n".join(status_lines(unpinned))


def _serve(settings: Settings, port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "NEXTWATCH_DATA_DIR": str(settings.data_dir),
        "NEXTWATCH_SOURCE": str(settings.source),
        "NEXTWATCH_PORT": str(port),
        "NEXTWATCH_RELOAD_POLL_SECONDS": "0",
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "pipelines.cli", "serve"]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 120
    while True:
        assert server.poll() is None, server.communicate()[1]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)


def test_a_table_cut_short_under_the_server_leaves_a_traceback_and_a_restart_answers_live(
    settings: Settings,
) -> None:
    path = settings.build_dir / IDS
    table = load_table(path.parent, "collaborative")
    assert table is not None
    movie = int(table.movie_ids[-1])  # its row lies far past the first 1000 bytes
    del table
    port = free_port()
    url = f"http://127.0.0.1:{port}/movies/{movie}/recommendations?strategy=collaborative"
    server = _serve(settings, port)
    try:
        assert httpx.get(url).status_code == 200
        os.truncate(path, 1000)  # what no writer does: every one writes a new file and renames it
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=30)
        _, stderr = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == -signal.SIGBUS
    assert "Fatal Python error: Bus error" in stderr and "neighbours.py" in stderr, stderr[-2000:]

    server = _serve(settings, port)  # what the restart policy does
    try:
        ready = httpx.get(f"http://127.0.0.1:{port}/ready").json()
        assert ready["parts"]["collaborative"].startswith("damaged table, answered live")
        assert "collaborative.ids.npy is 1,000 bytes" in ready["parts"]["collaborative"]
        answer = httpx.get(url)
        assert answer.status_code == 200 and answer.json()["items"]
        assert all(item["title"] for item in answer.json()["items"])
    finally:
        server.terminate()
        server.communicate(timeout=30)
