"""Every `nextwatch tmdb ...` command stops with one line naming the problem and its fix, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from pipelines.cli import app
from tests.support.fake_tmdb import TOKEN, FakeTmdb, toy_story_collection, toy_story_records
from tests.support.tmdb_data import cli_env, fast_env, make_data_dir, movielens_movies, nextwatch, write_kaggle_csv


@pytest.fixture(autouse=True)
def no_real_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TMDB_READ_ACCESS_TOKEN", "TMDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def server() -> Iterator[FakeTmdb]:
    with FakeTmdb(movies=toy_story_records(), collections={10194: toy_story_collection()}) as fake:
        yield fake


def use(monkeypatch: pytest.MonkeyPatch, data: Path, server: FakeTmdb) -> None:
    for name, value in fast_env(data, server).items():
        monkeypatch.setenv(name, value)


def dump(tmp_path: Path) -> Path:
    path = tmp_path / "dump.jsonl"
    path.write_text(
        "".join(
            json.dumps({"tmdb_id": t, "status": "ok", "language": "ko-KR", "data": r}, ensure_ascii=False) + "\n"
            for t, r in toy_story_records().items()
        ),
        encoding="utf-8",
    )
    return path


def one_line_error(result: Result, *needles: str) -> str:
    """The command failed with exactly one line on its output, naming every needle; returns that line."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # typer.Exit, not a crash
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_no_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: FakeTmdb) -> None:
    runner = CliRunner()
    csv_path = write_kaggle_csv(tmp_path / "movies.csv")
    for data in (tmp_path / "empty", tmp_path / "missing"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        use(monkeypatch, data, server)
        monkeypatch.setenv("TMDB_READ_ACCESS_TOKEN", TOKEN)
        for args in (["fetch"], ["collections"], ["import", str(csv_path)], ["import", str(dump(tmp_path))]):
            one_line_error(runner.invoke(app, ["tmdb", *args]), "no catalog", "nextwatch build")
        assert not data.exists() or list(data.iterdir()) == []  # nothing created on the way


def test_empty_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: FakeTmdb) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "catalog.sqlite").touch()
    use(monkeypatch, data, server)
    monkeypatch.setenv("TMDB_READ_ACCESS_TOKEN", TOKEN)
    one_line_error(CliRunner().invoke(app, ["tmdb", "fetch"]), "catalog is empty", "nextwatch catalog")


def test_missing_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: FakeTmdb) -> None:
    data = make_data_dir(tmp_path / "data", movielens_movies())
    use(monkeypatch, data, server)
    for command in ("fetch", "collections"):
        one_line_error(
            CliRunner().invoke(app, ["tmdb", command, "--quiet"]), "no TMDB credentials", "TMDB_READ_ACCESS_TOKEN"
        )
    assert server.seen == []


@pytest.mark.parametrize("damage", ["garbage", "binary", "truncated record"])
def test_a_damaged_checkpoint_stops_every_command_until_repaired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: FakeTmdb, damage: str
) -> None:
    data = make_data_dir(tmp_path / "data", movielens_movies())
    use(monkeypatch, data, server)
    monkeypatch.setenv("TMDB_READ_ACCESS_TOKEN", TOKEN)
    runner = CliRunner()
    assert runner.invoke(app, ["tmdb", "fetch", "--quiet"]).exit_code == 0
    checkpoint = data / "tmdb" / "movies.jsonl"
    good = checkpoint.read_bytes().splitlines(keepends=True)
    bad = {
        "garbage": b"<html>502 Bad Gateway</html>\n",
        "binary": b"\x00\xff\xfe\x00\n",
        "truncated record": good[0][: len(good[0]) // 2] + b"\n",
    }[damage]
    checkpoint.write_bytes(b"".join(good[:2]) + bad + b"".join(good[2:]))
    server.reset_log()

    for args in (["fetch", "--quiet"], ["collections", "--quiet"], ["import", str(dump(tmp_path))]):
        one_line_error(runner.invoke(app, ["tmdb", *args]), str(checkpoint), "line 3", "nextwatch tmdb repair")
    assert server.seen == []  # nothing was fetched on top of a damaged file

    result = runner.invoke(app, ["tmdb", "repair"])
    assert result.exit_code == 0, result.output
    assert "1 unreadable lines" in result.output
    assert (data / "tmdb" / "movies.jsonl.rejected").read_bytes() == bad
    result = runner.invoke(app, ["tmdb", "fetch", "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(checkpoint.read_bytes().splitlines()) == len(good)


@pytest.mark.integration  # a real subprocess
def test_the_real_cli_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    child = nextwatch(["tmdb", "fetch", "--quiet"], cli_env(tmp_path / "nothing-here"), tmp_path)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 1, err
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert "no catalog" in err and "nextwatch build" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["movies.csv", "dump.jsonl"])
def test_importing_a_binary_file_names_it_and_what_is_expected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: FakeTmdb, name: str
) -> None:
    data = make_data_dir(tmp_path / "data", movielens_movies())
    use(monkeypatch, data, server)
    binary = tmp_path / name
    binary.write_bytes(b"PK\x03\x04\x14\x00\xa3\x8f" + bytes(range(256)) * 4)
    line = one_line_error(
        CliRunner().invoke(app, ["tmdb", "import", str(binary)]), str(binary), "not UTF-8 text", "byte 0x", ".jsonl"
    )
    assert "codec can't decode" not in line
