"""kill -9 in the middle of `nextwatch tmdb fetch` / `tmdb import`, then a rerun: the same result as one clean run.

The real CLI runs as a child process against the fake TMDB on 127.0.0.1 (slowed, so a run takes a few
seconds) and is killed with SIGKILL at a seeded random point.  After the rerun, the checkpoint holds the
same record per id (fetched_at aside) with one line per id, and the catalog the same rows (regtime aside).
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.tmdb.checkpoint import Checkpoint
from services.stores.catalog import Catalog, movie_table, series_table
from tests.support.fake_tmdb import TOKEN, FakeTmdb, movie, translation
from tests.support.tmdb_data import (
    FIRST_TMDB_ID,
    cli_env,
    make_data_dir,
    many_movies,
    nextwatch,
)

SEED = 20240611


def korean_record(tmdb_id: int) -> dict[str, Any]:
    """A ko-KR answer; movies come in threes, each three a TMDB collection (real series replace inferred)."""
    n = tmdb_id - FIRST_TMDB_ID - 1
    return movie(
        tmdb_id,
        title=f"영화 {tmdb_id}",
        original_title=f"Movie {tmdb_id}",
        overview=f"줄거리 {tmdb_id}",
        ko=translation("ko", "KR", f"영화 {tmdb_id}", f"줄거리 {tmdb_id}"),
        collection=(900_000 + n // 3, f"시리즈 {n // 3}"),
        release_date=f"{1990 + n % 3 * 3}-01-01",
    )


def checkpoint_contents(path: Path) -> dict[int, dict[str, Any]]:
    return {r["tmdb_id"]: {k: v for k, v in r.items() if k != "fetched_at"} for r in Checkpoint(path).records()}


def catalog_rows(data: Path) -> tuple[list[tuple], list[tuple]]:
    catalog = Catalog(f"sqlite:///{data / 'catalog.sqlite'}")
    try:
        with catalog.engine.connect() as conn:
            movies = [c for c in movie_table.c if c.name != "regtime"]
            series = [c for c in series_table.c if c.name != "regtime"]
            return (
                [tuple(r) for r in conn.execute(select(*movies).order_by(movie_table.c.movie_id))],
                [tuple(r) for r in conn.execute(select(*series).order_by(series_table.c.series_id))],
            )
    finally:
        catalog.close()


def assert_readable_after_the_kill(path: Path) -> int:
    """Every line but a torn last one is a record, and the checkpoint reads; returns how many records."""
    lines = path.read_bytes().splitlines(keepends=True) if path.exists() else []
    for line in lines[:-1]:
        json.loads(line)
    return len(Checkpoint(path).statuses())


def assert_same_as_clean_run(clean: Path, crashed: Path) -> None:
    path = crashed / "tmdb" / "movies.jsonl"
    ids = [json.loads(line)["tmdb_id"] for line in path.read_bytes().splitlines()]
    assert Counter(ids).most_common(1)[0][1] == 1  # one line per id
    assert checkpoint_contents(path) == checkpoint_contents(clean / "tmdb" / "movies.jsonl")
    assert catalog_rows(crashed) == catalog_rows(clean)
    assert not (crashed / "tmdb" / "apply.pending").exists()


def test_kill_9_during_fetch_then_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    movies = many_movies(300)
    ids = movies["tmdbId"].astype(int).tolist()
    settings = {"TMDB_READ_ACCESS_TOKEN": TOKEN, "NEXTWATCH_TMDB_RATE_LIMIT": "100", "NEXTWATCH_TMDB_CONCURRENCY": "4"}
    with FakeTmdb(movies={i: korean_record(i) for i in ids}, latency=0.01) as server:
        clean = make_data_dir(tmp_path / "clean", movies)
        for name, value in cli_env(clean, server, **settings).items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(app, ["tmdb", "fetch", "--quiet"])
        assert result.exit_code == 0, result.output

        crashed = make_data_dir(tmp_path / "crashed", movies)
        env = cli_env(crashed, server, **settings)
        checkpoint = crashed / "tmdb" / "movies.jsonl"
        kill_after = random.Random(SEED).randint(len(ids) // 5, len(ids) * 4 // 5)  # records on disk
        child = nextwatch(["tmdb", "fetch", "--quiet"], env, tmp_path)
        deadline = time.monotonic() + 120
        while (
            (not checkpoint.exists() or checkpoint.read_bytes().count(b"\n") < kill_after)
            and child.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
        assert child.returncode == -signal.SIGKILL, "the fetch ended before it was killed"
        saved = assert_readable_after_the_kill(checkpoint)
        assert kill_after <= saved < len(ids)
        missing = set(ids) - set(Checkpoint(checkpoint).statuses())

        server.reset_log()
        rerun = nextwatch(["tmdb", "fetch", "--quiet"], env, tmp_path)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err
        assert f"{saved:,} already in the checkpoint" in err
        assert sorted(server.ids_requested()) == sorted(missing)  # nothing fetched twice
    assert_same_as_clean_run(clean, crashed)


def test_kill_9_during_import_then_rerun(tmp_path: Path) -> None:
    movies = many_movies(6_000)
    dump = tmp_path / "dump.jsonl"
    with dump.open("w", encoding="utf-8") as out:
        for i in movies["tmdbId"].astype(int):
            out.write(
                json.dumps(
                    {
                        "tmdb_id": int(i),
                        "status": "ok",
                        "fetched_at": "2026-01-01T00:00:00+00:00",
                        "language": "ko-KR",
                        "data": korean_record(int(i)),
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    clean = make_data_dir(tmp_path / "clean", movies)

    started = time.monotonic()
    child = nextwatch(["tmdb", "import", str(dump)], cli_env(clean), tmp_path)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    took = time.monotonic() - started

    # past the imports, while reading and writing; a run faster than the clean one is retried earlier
    fraction = random.Random(SEED).uniform(0.5, 0.9)
    for attempt in range(5):
        crashed = make_data_dir(tmp_path / f"crashed-{attempt}", movies)
        child = nextwatch(["tmdb", "import", str(dump)], cli_env(crashed), tmp_path)
        time.sleep(fraction * took)
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
        if child.returncode == -signal.SIGKILL:
            break
        fraction *= 0.7
    else:
        pytest.fail("the import ended before it was killed in 5 attempts")
    assert_readable_after_the_kill(crashed / "tmdb" / "movies.jsonl")

    rerun = nextwatch(["tmdb", "import", str(dump)], cli_env(crashed), tmp_path)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert_same_as_clean_run(clean, crashed)
