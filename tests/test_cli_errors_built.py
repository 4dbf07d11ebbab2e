"""One-line errors on a fully built data dir (real vectors) with one artifact damaged, and the rebuilds
the lines name actually repairing it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from pipelines.cli import app
from services.settings import Settings
from services.stores.generations import resolve_generation
from tests.support.servers import private_copy
from tests.test_cli_errors import COMMANDS, fails, garbage, ok, truncate


@pytest.fixture
def built(built_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the built data dir, which the commands below use."""
    copy = private_copy(built_settings, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEXTWATCH_DATA_DIR", str(copy.data_dir))
    monkeypatch.setenv("NEXTWATCH_SOURCE", str(built_settings.source))
    monkeypatch.setenv("NEXTWATCH_ALS_FACTORS", "16")
    monkeypatch.setenv("NEXTWATCH_ALS_ITERATIONS", "5")
    monkeypatch.setenv("NEXTWATCH_PORT", "1")
    return copy.data_dir


def invoke(command: str) -> Result:
    return CliRunner().invoke(app, COMMANDS[command])


def test_a_damaged_collection_is_rebuilt_by_embed(built: Path) -> None:
    collection = Settings().qdrant.collection
    for path in (resolve_generation(Settings()).qdrant_path / collection).rglob("*"):
        if path.is_file():
            garbage(path)
    fails(invoke("tune"), "vectors unavailable", "nextwatch build")
    result = invoke("embed")
    ok(result)
    assert "(0 newly embedded)" in result.output  # rebuilt from the embedding cache
    ok(invoke("evaluate"))


def test_damaged_collection_metadata_is_rebuilt_by_embed(built: Path) -> None:
    truncate(resolve_generation(Settings()).qdrant_path / f"{Settings().qdrant.collection}.json")
    fails(invoke("evaluate"), "vectors unavailable", "nextwatch build")
    ok(invoke("embed"))
    ok(invoke("evaluate"))


MODEL_DIRS = {"model.item_factors.npy": "als", "model.json": "als", "popularity.json": "popularity"}


@pytest.mark.parametrize("name", ["model.item_factors.npy", "model.json", "popularity.json"])
def test_a_damaged_evaluation_build_is_retrained_by_evaluate(built: Path, name: str) -> None:
    fails(invoke("serve --evaluation"), "no evaluation build", "nextwatch evaluate")
    ok(invoke("evaluate"))
    truncate(resolve_generation(Settings()).models_dir(evaluation=True) / MODEL_DIRS[name] / name)
    status = CliRunner().invoke(app, ["status"]).output  # checksums: the damaged file is named, with what retrains it
    assert f"evaluation build damaged: models/evaluation/{MODEL_DIRS[name]}/{name} is" in status, status
    assert "next: run `nextwatch evaluate`" in status, status
    ok(invoke("evaluate"))  # a damaged cache of the evaluation build is trained again


def test_a_damaged_model_is_retrained_by_train_force(built: Path) -> None:
    truncate(resolve_generation(Settings()).models_dir() / "als" / "model.item_factors.npy")
    assert "damaged: models/full/als/model.item_factors.npy is" in CliRunner().invoke(app, ["status"]).output
    result = CliRunner().invoke(app, ["train", "--force", "--quiet"])
    ok(result)


def test_tune_ends_by_naming_the_stale_steps_and_the_build(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tuned settings are served only after a build: tune says so, as `status` does, in one line."""
    from pipelines.evaluation import run

    def chosen(settings: Settings, protocol: object, **options: object) -> dict[str, object]:
        window = {"pairs": 10, "users": 5, "first": "2016-01-01T00:00:00Z", "last": "2016-02-01T00:00:00Z"}
        result = {"settings": {"sequential_window": 4}, "validation": window, "seconds": 0.1}
        run.write_json(settings.tuned_path, result)
        return result

    monkeypatch.setattr(run, "tune_step", chosen)
    result = CliRunner().invoke(app, ["tune"])
    ok(result)
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("tune: stale now: train (its inputs changed)"), last
    assert last.endswith("run `nextwatch build` to serve the tuned settings"), last
    status = CliRunner().invoke(app, ["status"]).output
    assert "stale: train (its inputs changed)" in status and "next: run `nextwatch build`" in status
    ok(CliRunner().invoke(app, ["build", "--quiet"]))
    ok(result := CliRunner().invoke(app, ["tune"]))
    assert result.output.strip().splitlines()[-1] == "tune: the served build already uses these settings"


def test_tune_without_a_validation_window_names_what_to_lower(built: Path) -> None:
    line = fails(
        CliRunner().invoke(app, ["tune", "--min-ratings", "999999"]),
        "no validation window",
        "999,999",
        "nextwatch tune --pairs N --min-ratings N",
    )
    assert "RuntimeError" not in line


def test_status_names_embed_stale_when_the_tuned_text_changes(built: Path) -> None:
    settings = Settings()
    settings.tuned_path.write_text(json.dumps({"settings": {"content_text": "title"}}), encoding="utf-8")
    status = CliRunner().invoke(app, ["status"]).output
    assert "embed (its text is 'overview', the settings want 'title')" in status, status
