"""`nextwatch evaluate --report DIR`: report.json, report.md and hit_ratio.png, and clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from services.settings import Settings
from tests.support.servers import free_port, private_copy

runner = CliRunner()


@pytest.fixture(scope="module")
def data_dir(built_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return private_copy(built_settings, tmp_path_factory.mktemp("report") / "data").data_dir


def _evaluate(data_dir: Path, *args: str):
    return runner.invoke(app, ["evaluate", "--quiet", *args], env={"NEXTWATCH_DATA_DIR": str(data_dir)})


def test_report_files(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = _evaluate(data_dir, "--report", str(out), "--pairs", "400", "--k", "5", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert "HR@5 [95% CI]" in result.output and "cutoff" in result.output

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert {
        "mode",
        "protocol",
        "pairs",
        "users",
        "test_window",
        "cutoff_timestamp",
        "cutoff",
        "data",
        "models",
        "strategies",
        "reference",
        "seconds",
    } <= set(report)
    assert report["protocol"] == {
        "min_ratings": 20,
        "pairs": 400,
        "k": 5,
        "seed": 7,
        "resamples": 1000,
        "confidence": 0.95,
        "resampled": "users",
    }
    assert report["pairs"] == 400 and report["users"] >= 1
    assert report["models"]["trained_before"] == report["cutoff_timestamp"]
    assert report["models"]["als"]["max_timestamp"] < report["cutoff_timestamp"]
    for scores in report["strategies"].values():
        assert {
            "hr@5",
            "hr@5_ci",
            "ndcg@5",
            "ndcg@5_ci",
            "mrr@5",
            "mrr@5_ci",
            "coverage",
            "answered",
            "qps",
            "seconds",
        } <= set(scores)
        lo, hi = scores["hr@5_ci"]
        assert lo <= scores["hr@5"] <= hi
    assert report["reference"]["hr@10"] == {"random": 0.0, "series": 0.0603, "vector": 0.0683, "series+vector": 0.0653}
    assert len(report["data"]["sha256"]) == 64

    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert f"cutoff: {report['cutoff']}" in markdown
    assert "| strategy | HR@5 [95% CI] |" in markdown
    reference = markdown[markdown.index("## Reference") :]
    assert "MovieLens 32M" in reference and "another dataset" in reference
    assert all(f"{v:.4f}" in reference for v in (0.0603, 0.0683, 0.0653))
    assert report["data"]["sha256"] in markdown

    assert (out / "hit_ratio.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_protocol_flags_are_usage_errors(data_dir: Path) -> None:
    for args in (["--k", "0"], ["--pairs", "-3"], ["--min-ratings", "abc"]):
        result = _evaluate(data_dir, *args)
        assert result.exit_code == 2 and "Traceback" not in result.output


def test_an_impossible_protocol_is_a_clear_error(data_dir: Path) -> None:
    result = _evaluate(data_dir, "--min-ratings", "1000000")
    assert result.exit_code == 1 and "no next-item pairs" in result.output


def test_through_api_against_nothing_is_a_clear_error(data_dir: Path) -> None:
    result = _evaluate(data_dir, "--through-api", f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 1 and "cannot reach" in result.output and "Traceback" not in result.output


def test_serve_evaluation_without_the_build_is_a_clear_error(built_settings: Settings, tmp_path: Path) -> None:
    fresh = private_copy(built_settings, tmp_path / "data").data_dir
    result = runner.invoke(app, ["serve", "--evaluation"], env={"NEXTWATCH_DATA_DIR": str(fresh)})
    assert result.exit_code == 1 and "run `nextwatch evaluate` first" in result.output


def test_report_carries_the_history_and_last_item_protocols(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = _evaluate(data_dir, "--report", str(out), "--pairs", "400", "--k", "5", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert "history protocol" in result.output and "last-item protocol" in result.output

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert set(report["strategies"]) >= {"hybrid", "sequential"}  # seed 002's protocol, as before
    for name in ("history", "last_item"):
        protocol = report[name]
        assert {"strategies", "paired", "rows", "users"} <= set(protocol)
        assert {"hybrid", "sequential", "collaborative", "popular"} <= set(protocol["strategies"])
        for scores in protocol["strategies"].values():
            assert {"hr@5", "hr@5_ci", "ndcg@5", "ndcg@5_ci", "mrr@5"} <= set(scores)
            lo, hi = scores["hr@5_ci"]
            assert lo <= scores["hr@5"] <= hi
        best = protocol["paired"]["best_other"]
        assert best["strategy"] == "hybrid" and len(best["ci"]) == 2
        assert set(protocol["paired"]["parts"]) <= set(protocol["strategies"])
    # the history protocol has seed 002's rows, and pairs hybrid with the one-movie hybrid on them
    assert report["history"]["rows"] == report["pairs"] == 400
    assert report["history"]["paired"]["one_movie_hybrid"]["against"] == "one-movie hybrid"
    # the last-item protocol has a row per user with 3 ratings and states its time leakage
    assert report["last_item"]["rows"] == report["last_item"]["users"] >= 100
    assert 0 < report["last_item"]["leakage"]["later_training_share"] < 1

    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "## History protocol" in markdown and "## Last-item protocol" in markdown
    assert "time leakage" in markdown
    assert markdown.count("| strategy | HR@5 [95% CI] |") == 3
