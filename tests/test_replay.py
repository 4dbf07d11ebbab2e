"""`nextwatch replay` against `serve --evaluation` (#22): each variant's online HR@10 agrees with the history
protocol's offline HR@10 within the intervals, and the replayed exposures are the test pairs asked for."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.evaluation.protocol import Protocol
from pipelines.evaluation.report import write_report
from pipelines.evaluation.run import evaluate_step
from pipelines.replay import replay, report_lines, window_steps
from services.settings import Settings
from tests.support.servers import private_copy, running_server

EXPERIMENTS = """
[experiments.next-list]
salt = "replay"
control = "hybrid"
variants.hybrid = { share = 0.5, strategy = "hybrid" }
variants.sequential = { share = 0.5, strategy = "sequential" }
"""
USERS = 20


def protocol(settings: Settings) -> Protocol:
    """A smaller test window than the default: the evaluation stays short."""
    return Protocol.from_settings(settings, pairs=1000, resamples=300)


@pytest.fixture(scope="module")
def evaluated(built_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A private copy of the build, evaluated (the evaluation build and data/report/report.json)."""
    settings = private_copy(built_settings, tmp_path_factory.mktemp("replay") / "data")
    run = evaluate_step(settings, protocol(settings), progress=False, strategies=["hybrid", "sequential"])
    write_report(run, settings.data_dir / "report")
    return settings


def serving(evaluated: Settings, tmp_path: Path) -> Settings:
    """`serve --evaluation` with the experiment, and an events database of the test's own."""
    experiments = tmp_path / "experiments.toml"
    experiments.write_text(EXPERIMENTS, encoding="utf-8")
    update = {"experiments": experiments, "events_url": f"sqlite:///{tmp_path / 'events.sqlite'}"}
    return evaluated.updated(serve_models="evaluation", reload_poll_seconds=0, precompute_k=0).model_copy(update=update)


def test_the_replay_agrees_with_the_offline_history_protocol(evaluated: Settings, tmp_path: Path) -> None:
    served = serving(evaluated, tmp_path)
    steps = window_steps(evaluated, protocol(evaluated), USERS)
    assert len({s.user for s in steps}) == USERS and any(s.target for s in steps)  # of the window's 28
    assert [s.timestamp for s in steps] == sorted(s.timestamp for s in steps)
    with running_server(served) as url, httpx.Client(base_url=url, timeout=60) as client:
        # the evaluation build knows the viewers' ratings only up to the window
        cutoff = min(s.timestamp for s in steps if s.target)
        known = client.get(f"/users/{steps[0].user}/history").json()["items"]
        assert all(pd.Timestamp(i["at"]).timestamp() < cutoff for i in known)
        reports = replay(client, steps)
    report = reports["experiments"]["next-list"]
    print("\n".join(report_lines(reports)))
    variants = report["variants"]
    assert sum(v["exposures"] for v in variants.values()) == sum(s.target for s in steps)
    for name, v in variants.items():
        assert v["pending"] == 0 and v["exposures"] > 0, name
        low, high = v["hr@10_ci"]
        offline_low, offline_high = v["offline_hr@10_ci"]
        assert low <= offline_high and offline_low <= high, (name, v)  # the intervals overlap
    assert report["difference"]["ci"] is not None


def test_the_command_prints_and_writes_the_reports(evaluated: Settings, tmp_path: Path) -> None:
    env = {"NEXTWATCH_DATA_DIR": str(evaluated.data_dir), "NEXTWATCH_PAIRS": "1000"}
    with running_server(serving(evaluated, tmp_path)) as url:
        done = CliRunner().invoke(
            app, ["replay", "--api", url, "--users", "3", "--json", str(tmp_path / "r.json")], env=env
        )
    assert done.exit_code == 0, done.output
    assert "experiment next-list (control hybrid" in done.stdout
    reports = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert sum(v["exposures"] for v in reports["experiments"]["next-list"]["variants"].values()) > 0
    wrong = CliRunner().invoke(app, ["replay", "--api", url, "--window", "validation"], env=env)
    assert wrong.exit_code == 1 and "only test can be replayed" in wrong.output
