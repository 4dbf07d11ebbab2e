"""The walkthrough notebooks run top to bottom against a built data dir."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from services.settings import Settings

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path, built_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXTWATCH_DATA_DIR", str(built_settings.data_dir))
    monkeypatch.setenv("NEXTWATCH_ALS_FACTORS", str(built_settings.als.factors))
    monkeypatch.setenv("NEXTWATCH_ALS_ITERATIONS", str(built_settings.als.iterations))
    monkeypatch.setenv("NEXTWATCH_SOURCE", built_settings.source)
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent.parent)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert "Toy Story" in str(outputs)
