"""The latest evaluation report (`make run` writes it to <data_dir>/report/) as API routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from services.api import deps
from services.api.schemas import ErrorBody
from services.serving.runtime import Runtime

router = APIRouter(tags=["evaluation"])
REPORT_FILES = {
    "report.json": "application/json",
    "report.md": "text/markdown; charset=utf-8",
    "hit_ratio.png": "image/png",
}
ABSENT: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "no report written yet"}}


def report_dir(rt: Runtime) -> Path:
    """Where `nextwatch demo` (and `make evaluate`) write the report."""
    return rt.settings.data_dir / "report"


def _report_file(rt: Runtime, name: str) -> FileResponse:
    path = report_dir(rt) / name
    if not path.is_file():  # the hint names the command, never a path on the server's disk
        raise HTTPException(
            status_code=404,
            detail=f"no evaluation report ({name}) yet: run `nextwatch evaluate --report <data dir>/report` "
            "(or `make evaluate`, or `make run`) on the server",
        )
    return FileResponse(path, media_type=REPORT_FILES[name])


@router.get("/evaluation/report.json", responses={200: {"content": {"application/json": {}}}, **ABSENT})
def report_json(rt: deps.RuntimeDep) -> FileResponse:
    """The latest report: protocol, cutoff, data fingerprint, every strategy's metrics with 95% intervals."""
    return _report_file(rt, "report.json")


@router.get("/evaluation/report.md", responses={200: {"content": {"text/markdown": {}}}, **ABSENT})
def report_markdown(rt: deps.RuntimeDep) -> FileResponse:
    """The latest report as Markdown."""
    return _report_file(rt, "report.md")


@router.get("/evaluation/hit_ratio.png", responses={200: {"content": {"image/png": {}}}, **ABSENT})
def hit_ratio_plot(rt: deps.RuntimeDep) -> FileResponse:
    """HR@k per strategy with its interval (bar chart)."""
    return _report_file(rt, "hit_ratio.png")
