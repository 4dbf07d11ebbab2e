"""`python -m bench.synth`: writes a MovieLens-32M-format release at the tiny scale, deterministically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from bench.synth.__main__ import app
from bench.synth.synth import SCALES
from pipelines.ingest.movielens import ingest

FILES = ("ratings.csv", "movies.csv", "links.csv", "tmdb_metadata.csv")


def _synth(out: Path, *extra: str):
    return CliRunner().invoke(app, ["--scale", "tiny", "--out", str(out), "--quiet", *extra])


def test_synth_writes_a_release_that_ingests(tmp_path: Path) -> None:
    result = _synth(tmp_path / "rel", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "2,000 ratings, 50 users, 200 movies" in result.output
    assert sorted(p.name for p in (tmp_path / "rel").iterdir()) == sorted(FILES)

    ratings = pd.read_csv(tmp_path / "rel" / "ratings.csv")
    spec = SCALES["tiny"]
    assert list(ratings.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert (len(ratings), ratings["userId"].nunique(), ratings["movieId"].nunique()) == (
        spec.ratings,
        spec.users,
        spec.movies,
    )

    ingested = ingest(str(tmp_path / "rel"), tmp_path / "data", progress=False)
    assert (ingested.ratings, ingested.users, ingested.movies) == (spec.ratings, spec.users, spec.movies)


def test_synth_is_deterministic_per_seed(tmp_path: Path) -> None:
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        assert _synth(tmp_path / name, "--seed", seed).exit_code == 0
    for f in FILES:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "ratings.csv").read_bytes() != (tmp_path / "c" / "ratings.csv").read_bytes()


def test_synth_rejects_an_unknown_scale(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--scale", "64m", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "unknown scale '64m'" in result.output and "tiny" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists()
