"""Every `nextwatch` command on an empty, half-built or damaged data dir stops with one line naming the
problem and the command that fixes it, never a traceback (unless `--debug`).

The states are cheap: a tiny release (30 movies) ingested, catalogued and trained, no embeddings;
tests/test_cli_errors_built.py covers the states that need real vectors.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from pipelines.cli import app
from tests.support.data import write_release
from tests.support.tmdb_data import cli_env, nextwatch

COMMANDS = {
    "ingest": ["ingest", "--quiet"],
    "catalog": ["catalog"],
    "embed": ["embed", "--quiet"],
    "embed --dry-run": ["embed", "--dry-run"],
    "train": ["train", "--quiet"],
    "build": ["build", "--quiet"],
    "tune": ["tune"],
    "evaluate": ["evaluate", "--quiet"],
    "serve --evaluation": ["serve", "--evaluation"],
    "serve": ["serve"],
}


def assert_one_line_error(output: str, *needles: str) -> str:
    """Exactly one `error:` line, the last one (log lines may precede it), naming a `nextwatch` command
    and every needle; no traceback. Returns the line."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], output
    assert "`nextwatch " in errors[0], errors[0]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def fails(result: Result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    return assert_one_line_error(result.output, *needles)


def ok(result: Result) -> None:
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def tiny_release(sample: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_release(sample, tmp_path_factory.mktemp("ml-tiny"), 30)


@pytest.fixture(scope="module")
def stages(tiny_release: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Data dirs after ingest, after catalog, and after train (no vectors), built once by the real CLI."""
    root = tmp_path_factory.mktemp("stages")
    with pytest.MonkeyPatch.context() as mp:
        out: dict[str, Path] = {}
        data = root / "work"
        mp.setenv("NEXTWATCH_DATA_DIR", str(data))
        mp.setenv("NEXTWATCH_SOURCE", str(tiny_release))
        for stage, command in (("ingested", "ingest"), ("catalogued", "catalog"), ("trained", "train")):
            ok(CliRunner().invoke(app, COMMANDS[command]))
            out[stage] = shutil.copytree(data, root / stage)
    return out


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_release: Path) -> Path:
    """Where the command under test runs: settings only from this environment."""
    monkeypatch.chdir(tmp_path)
    for name in ("NEXTWATCH_DATABASE_URL", "NEXTWATCH_QDRANT_URL", "NEXTWATCH_SERVE_MODELS"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    monkeypatch.setenv("NEXTWATCH_DATA_DIR", str(data))
    monkeypatch.setenv("NEXTWATCH_SOURCE", str(tiny_release))
    monkeypatch.setenv("NEXTWATCH_PORT", "1")  # never bound: every serve below fails before uvicorn
    return data


def at(stages: dict[str, Path], stage: str, data: Path) -> Path:
    if stage == "empty":
        data.mkdir()
    else:
        shutil.copytree(stages[stage], data)
    return data


def invoke(command: str) -> Result:
    return CliRunner().invoke(app, COMMANDS[command])


# (state, command) -> what the one line must name
HALF_BUILT = [
    ("empty", "catalog", "nextwatch ingest"),
    ("empty", "embed", "nextwatch catalog"),
    ("empty", "embed --dry-run", "nextwatch catalog"),
    ("empty", "train", "nextwatch ingest"),
    ("empty", "tune", "nextwatch ingest"),
    ("empty", "evaluate", "nextwatch ingest"),
    ("empty", "serve --evaluation", "nextwatch build"),
    ("empty", "serve", "nextwatch build"),
    ("ingested", "embed", "nextwatch catalog"),  # was an SQLAlchemy traceback: no such table: movie
    ("ingested", "embed --dry-run", "nextwatch catalog"),
    ("ingested", "tune", "nextwatch catalog"),
    ("ingested", "evaluate", "nextwatch catalog"),
    ("ingested", "serve --evaluation", "nextwatch evaluate"),
    ("ingested", "serve", "nextwatch catalog"),
    ("catalogued", "tune", "nextwatch build"),  # no vectors
    ("catalogued", "evaluate", "nextwatch build"),
    ("catalogued", "serve --evaluation", "nextwatch evaluate"),
]


@pytest.mark.parametrize(("stage", "command", "fix"), HALF_BUILT, ids=[f"{s}-{c}" for s, c, _ in HALF_BUILT])
def test_half_built(stages: dict[str, Path], data_dir: Path, stage: str, command: str, fix: str) -> None:
    at(stages, stage, data_dir)
    fails(invoke(command), fix)


def garbage(path: Path) -> None:
    path.write_bytes(b"<html>502 Bad Gateway</html>\n" * 8)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {"garbage": garbage, "truncated": truncate}

# (stage, damaged file in the data dir, commands) -> what the one line must name
DAMAGED = [
    (
        "trained",
        "ratings.parquet",
        ("catalog", "train", "tune", "evaluate"),
        ("ratings.parquet", "nextwatch ingest --force"),
    ),
    ("trained", "movies.parquet", ("catalog",), ("movies.parquet", "nextwatch ingest --force")),
    # a damaged model (its checksum differs) is not a start error: its source degrades (tests/test_integrity.py)
    ("trained", "tuned.json", ("train", "evaluate", "serve"), ("tuned.json", "nextwatch tune")),
    (
        "catalogued",
        "catalog.sqlite",
        ("catalog", "embed", "embed --dry-run", "tune", "evaluate", "serve"),
        ("catalog.sqlite", "nextwatch catalog"),
    ),
    ("catalogued", "embedding_cache.sqlite", ("embed", "embed --dry-run"), ("embedding cache", "nextwatch embed")),
]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize(("stage", "name", "commands", "needles"), DAMAGED, ids=[d[1] for d in DAMAGED])
def test_damaged_artifact(
    stages: dict[str, Path],
    data_dir: Path,
    stage: str,
    name: str,
    commands: tuple[str, ...],
    needles: tuple[str, ...],
    damage: str,
) -> None:
    at(stages, stage, data_dir)
    path = data_dir / name
    if not path.exists():  # tuned.json, the embedding cache: not made by the cheap stages
        path.write_text('{"settings": {"als_factors": 8}, "validation": {}}' if name == "tuned.json" else "")
        if name == "embedding_cache.sqlite":
            path.write_bytes(b"SQLite format 3\x00" + b"\x01" * 4096)
    DAMAGE[damage](path)
    for command in commands:
        fails(invoke(command), *needles)


def test_a_damaged_collection_names_the_rebuild(stages: dict[str, Path], data_dir: Path) -> None:
    at(stages, "trained", data_dir)
    shard = data_dir / "qdrant" / "movies"
    shard.mkdir(parents=True)
    garbage(shard / "edge_config.json")
    garbage(data_dir / "qdrant" / "movies.json")
    for command in ("tune", "evaluate"):
        fails(invoke(command), "vectors", "nextwatch build")


def test_damaged_build_state_is_read_as_empty(stages: dict[str, Path], data_dir: Path) -> None:
    """Steps are idempotent, so an unreadable build_state.json only means they run again."""
    at(stages, "trained", data_dir)
    truncate(data_dir / "build_state.json")
    for command in ("ingest", "catalog", "train"):
        ok(invoke(command))


def test_a_missing_source(data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data_dir.mkdir()
    monkeypatch.setenv("NEXTWATCH_SOURCE", str(tmp_path / "no-such-release"))
    for command in ("ingest", "build"):
        fails(invoke(command), "no-such-release", "nextwatch ingest --source")
    zip_path = tmp_path / "ml-latest-small.zip"
    garbage(zip_path)
    monkeypatch.setenv("NEXTWATCH_SOURCE", str(zip_path))
    fails(invoke("ingest"), "ml-latest-small.zip", "nextwatch ingest --source")


def test_the_database_password_is_never_shown(
    stages: dict[str, Path], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at(stages, "ingested", data_dir)
    monkeypatch.setenv("NEXTWATCH_DATABASE_URL", "postgresql+psycopg://nextwatch:s3cr3t-pw@127.0.0.1:1/nextwatch")
    for command in ("catalog", "embed --dry-run", "evaluate"):
        line = fails(invoke(command), "NEXTWATCH_DATABASE_URL", "127.0.0.1:1", "nextwatch catalog")
        assert "s3cr3t-pw" not in line


def test_an_unexpected_error_names_itself_and_debug(
    stages: dict[str, Path], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at(stages, "catalogued", data_dir)

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr("pipelines.models.trainers.train_als", broken)
    fails(invoke("train"), "KeyError", "boom", "nextwatch --debug")
    result = CliRunner().invoke(app, ["--debug", "train", "--quiet"])
    assert result.exit_code != 0 and isinstance(result.exception, KeyError)


@pytest.mark.parametrize(
    ("stage", "command", "fix"),
    [
        ("ingested", "embed", "nextwatch catalog"),
        ("ingested", "serve", "nextwatch catalog"),
        ("trained", "serve --evaluation", "nextwatch evaluate"),
    ],
)
@pytest.mark.integration  # real subprocesses
def test_the_real_cli(stages: dict[str, Path], tmp_path: Path, stage: str, command: str, fix: str) -> None:
    """As a process: one line on stderr, nothing on stdout, exit code 1; `--debug` shows the traceback."""
    data = at(stages, stage, tmp_path / "data")
    child = nextwatch(COMMANDS[command], cli_env(data, NEXTWATCH_PORT="1"), tmp_path)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 1 and out == "", (out, err)
    assert_one_line_error(err, fix)
    child = nextwatch(["--debug", *COMMANDS[command]], cli_env(data, NEXTWATCH_PORT="1"), tmp_path)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 1 and "Traceback" in err, err


def test_a_release_that_shrinks_by_more_than_90_percent_needs_force(
    stages: dict[str, Path], data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at(stages, "ingested", data_dir)
    before = (data_dir / "ratings.parquet").read_bytes(), (data_dir / "source.json").read_bytes()
    recorded = len(pd.read_parquet(data_dir / "ratings.parquet"))
    one = tmp_path / "one-rating"
    one.mkdir()
    (one / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
    monkeypatch.setenv("NEXTWATCH_SOURCE", str(one))
    for command in ("ingest", "build"):
        fails(invoke(command), f"{recorded:,} ratings", "by 99.", f"`nextwatch ingest --source {one} --force`")
    assert ((data_dir / "ratings.parquet").read_bytes(), (data_dir / "source.json").read_bytes()) == before
    ok(CliRunner().invoke(app, ["ingest", "--quiet", "--force"]))
    assert len(pd.read_parquet(data_dir / "ratings.parquet")) == 1


def test_out_of_range_ratings_are_one_line_naming_the_file_and_row(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,1\n1,2,9.5,2\n")
    monkeypatch.setenv("NEXTWATCH_SOURCE", str(bad))
    fails(invoke("ingest"), f"{bad / 'ratings.csv'}, line 3: rating 9.5", "0.5..5", "nextwatch ingest --source")


def test_evaluate_names_the_min_ratings_to_lower(stages: dict[str, Path], data_dir: Path) -> None:
    at(stages, "ingested", data_dir)
    result = CliRunner().invoke(app, ["evaluate", "--quiet", "--min-ratings", "999999"])
    line = fails(result, "no next-item pairs", "999,999", "lower --min-ratings to at most", "--min-ratings N")
    assert "RuntimeError" not in line


def test_a_k_above_the_apis_max_k_is_refused(stages: dict[str, Path], data_dir: Path) -> None:
    at(stages, "ingested", data_dir)
    for command in (["evaluate", "--quiet"], ["tune"]):
        line = fails(CliRunner().invoke(app, [*command, "--k", "100000"]), "100,000", "NEXTWATCH_MAX_K", "--k 100")
        assert "ValueError" not in line
