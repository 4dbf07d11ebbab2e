"""`make run` serves at once: a quick build leaves the embedding and the slow models for later, the server
answers from it (degraded, saying what is missing), and the full build completes it in a new generation."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pipelines import steps
from pipelines.status import status_lines
from services.api.app import create_app
from services.recommender.registry import REGISTRY
from services.settings import Settings
from services.stores.generations import current_generation, generations
from tests.support.servers import free_port
from tests.support.tmdb_data import cli_env

SLOW = [spec.name for spec in REGISTRY.models.values() if spec.slow]


def test_a_quick_build_serves_degraded_and_the_full_build_completes_it(small_release: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    settings = Settings(data_dir=tmp_path / "data", source=str(small_release), als_factors=16, als_iterations=5)
    results = steps.build(settings, progress=False, quick=True)
    assert "embed" not in results and SLOW == ["learned"]
    quick = current_generation(settings.data_dir)
    assert quick is not None
    assert not (settings.data_dir / "builds" / quick / "models" / "full" / "learned").exists()
    assert "embed (never built)" in "\n".join(status_lines(settings))  # `nextwatch build` completes it

    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503 and set(ready.json()["missing"]) == {"vectors", "learned"}
        answer = client.post("/next", json={"history": [1, 2, 3], "k": 5})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["items"]) == 5 and set(body["missing"]) <= {"vectors", "learned"}  # only the slow parts

    assert steps.build(settings, progress=False, quick=True)["train"] is None  # nothing new: no generation
    assert generations(settings.data_dir) == [quick]

    steps.build(settings, progress=False)
    full = current_generation(settings.data_dir)
    assert full != quick and (settings.data_dir / "builds" / str(full) / "models" / "full" / "learned").is_dir()
    with TestClient(create_app(settings)) as client:
        assert client.get("/ready").status_code == 200


def test_demo_serves_then_completes_and_evaluates_in_the_background(small_release: Path, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    tuned = {"settings": {"als_factors": 16, "als_iterations": 5}}  # tuning has tests of its own (test_tuning)
    (tmp_path / "data" / "tuned.json").write_text(json.dumps(tuned), encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = cli_env(
        tmp_path / "data",
        NEXTWATCH_SOURCE=str(small_release),
        NEXTWATCH_PAIRS="1000",
        NEXTWATCH_BOOTSTRAP_RESAMPLES="100",
    )
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "demo", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        report = tmp_path / "data" / "report" / "report.json"
        while not report.exists():
            assert demo.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        assert httpx.get(f"{url}/ready").status_code == 200  # the completed build is served
        text = log.read_text()
        assert text.index("(quick:") < text.index("Application startup complete")
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
