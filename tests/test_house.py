"""The house rules the issue "One home per source" set, checked: layers, module size, the front door, docs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pipelines.config_reference import render

ROOT = Path(__file__).parents[1]
BELOW_API = ("services/serving", "services/recommender", "services/stores", "services/embeddings")
MAX_MODULE_LINES = 600
MAX_README_BYTES = 12 * 1024


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _modules(*BELOW_API), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_below_the_api_imports_it(path: Path) -> None:
    assert not {m for m in _imports(path) if m == "services.api" or m.startswith("services.api.")}


def test_pipelines_never_import_the_api() -> None:
    offenders = [p for p in _modules("pipelines") if any(m.startswith("services.api") for m in _imports(p))]
    assert offenders == []


def test_settings_import_no_store() -> None:
    assert not {m for m in _imports(ROOT / "services" / "settings.py") if m.startswith("services.")}


def test_no_module_is_too_long() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules("services", "pipelines")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_the_readme_is_a_front_door_and_every_link_resolves() -> None:
    assert (ROOT / "README.md").stat().st_size <= MAX_README_BYTES
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if not re.match(r"[a-z]+:", target):
                assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_the_configuration_reference_is_generated_from_the_settings() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == render(), "run `make docs`"
