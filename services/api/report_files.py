"""The latest evaluation report (`make run` writes it to <data_dir>/report/) as API routes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from services.api import deps
from services.api.schemas import ErrorBody

router = APIRouter(tags=["evaluation"])
REPORT_FILES = {"report.json": "application/json", "report.md": "text/markdown; charset=utf-8",
                "hit_ratio.png": "image/png"}
ABSENT: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "no report written yet"}}


def report_dir(request: Request) -> Path:
    """Where `nextwatch demo` (and `make evaluate`) write the report."""
    return deps.runtime(request).settings.resolved_data_dir / "report"


def _report_file(request: Request, name: str) -> FileResponse:
    path = report_dir(request) / name
    if not path.is_file():
        raise HTTPException(status_code=404, detail=f"no evaluation report ({name}) yet: run "
                            f"`nextwatch evaluate --report {report_dir(request)}` (or `make run`)")
    return FileResponse(path, media_type=REPORT_FILES[name])


@router.get("/evaluation/report.json", responses={200: {"content": {"application/json": {}}}, **ABSENT})
def report_json(request: Request) -> FileResponse:
    """The latest report: protocol, cutoff, data fingerprint, every strategy's metrics with 95% intervals."""
    return _report_file(request, "report.json")


@router.get("/evaluation/report.md", responses={200: {"content": {"text/markdown": {}}}, **ABSENT})
def report_markdown(request: Request) -> FileResponse:
    """The latest report as Markdown."""
    return _report_file(request, "report.md")


@router.get("/evaluation/hit_ratio.png", responses={200: {"content": {"image/png": {}}}, **ABSENT})
def hit_ratio_plot(request: Request) -> FileResponse:
    """HR@k per strategy with its interval (bar chart)."""
    return _report_file(request, "hit_ratio.png")
