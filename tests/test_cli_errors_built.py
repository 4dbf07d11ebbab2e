"""One-line errors on a fully built data dir (real vectors) with one artifact damaged, and the rebuilds
the lines name actually repairing it."""

from __future__ import annotations

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


MODEL_DIRS = {"model.npz": "als", "model.json": "als", "popularity.json": "popularity"}


@pytest.mark.parametrize("name", ["model.npz", "model.json", "popularity.json"])
def test_a_damaged_evaluation_build_is_retrained_by_evaluate(built: Path, name: str) -> None:
    fails(invoke("serve --evaluation"), "no evaluation build", "nextwatch evaluate")
    ok(invoke("evaluate"))
    truncate(resolve_generation(Settings()).models_dir(evaluation=True) / MODEL_DIRS[name] / name)
    fails(invoke("serve --evaluation"), "is unreadable", "nextwatch evaluate")
    ok(invoke("evaluate"))  # a damaged cache of the evaluation build is trained again


def test_a_damaged_model_is_retrained_by_train_force(built: Path) -> None:
    truncate(resolve_generation(Settings()).models_dir() / "als" / "model.npz")
    fails(invoke("serve"), "ALS model", "nextwatch train --force")
    result = CliRunner().invoke(app, ["train", "--force", "--quiet"])
    ok(result)
