"""Settings read from the environment and `.env`: what the reference's "empty: ..." means."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from services.settings import GROUPS, Settings, env_name, grouped_fields

ROOT = Path(__file__).resolve().parents[1]


def may_be_none() -> list[tuple[str, str | None, str]]:
    """(environment variable, group or None for a top-level setting, field) of every setting that may be None."""
    top = [
        (env_name(name), None, name)
        for name, info in Settings.model_fields.items()
        if name not in GROUPS and type(None) in get_args(info.annotation)
    ]
    grouped = [
        (env_name(flat), group, field)
        for group, field, flat, info in grouped_fields()
        if type(None) in get_args(info.annotation)
    ]
    return top + grouped


def value(settings: Settings, group: str | None, field: str) -> object:
    return getattr(settings if group is None else getattr(settings, group), field)


@pytest.mark.parametrize(("env", "group", "field"), may_be_none(), ids=lambda x: x if isinstance(x, str) else "")
def test_an_empty_variable_sets_a_setting_that_may_be_none_to_none(
    env: str, group: str | None, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`NEXTWATCH_LEARNED_MAX_SECONDS=` is "empty: no limit", not an unreadable number; `NEXTWATCH_EXPERIMENTS=`
    is "empty: no experiments", not the working directory (``Path("")``)."""
    monkeypatch.chdir(ROOT / "tests")  # no .env here
    monkeypatch.setenv(env, "")
    assert value(Settings(), group, field) is None
    monkeypatch.setenv(env, "  ")
    assert value(Settings(), group, field) is None


def test_the_list_covers_the_settings_the_reference_calls_empty() -> None:
    documented = {"NEXTWATCH_LEARNED_MAX_SECONDS", "NEXTWATCH_HISTORY_LEARNED_LAST", "NEXTWATCH_LEARNED_LR_PATIENCE"}
    documented |= {"NEXTWATCH_EXPERIMENTS", "NEXTWATCH_API_KEYS_FILE", "NEXTWATCH_GENERATION", "TMDB_API_KEY"}
    assert documented <= {env for env, _, _ in may_be_none()}


def test_empty_in_a_dot_env_file_and_values_still_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("NEXTWATCH_LEARNED_MAX_SECONDS", "NEXTWATCH_EXPERIMENTS", "NEXTWATCH_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text("NEXTWATCH_LEARNED_MAX_SECONDS=\nNEXTWATCH_EXPERIMENTS=\nNEXTWATCH_DATABASE_URL=\n")
    settings = Settings()
    assert settings.learned.max_seconds is None and settings.experiments is None
    assert settings.database_url == ""  # a setting that may not be None keeps its empty text ("empty: SQLite")
    monkeypatch.setenv("NEXTWATCH_LEARNED_MAX_SECONDS", "90")  # the environment wins over .env
    assert Settings().learned.max_seconds == 90.0


def test_a_command_runs_with_an_empty_budget(tmp_path: Path) -> None:
    """What docs/evaluation.md advises for a repeatable model reaches a command (every command stopped at a
    validation error of the setting before)."""
    env = {"PATH": "/usr/bin:/bin", "NEXTWATCH_DATA_DIR": str(tmp_path), "NEXTWATCH_LEARNED_MAX_SECONDS": ""}
    shown = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "status"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert "nothing ingested yet" in shown.stdout
