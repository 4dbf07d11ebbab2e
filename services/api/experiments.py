"""The experiments' reports: online HR@10 per variant against the offline figures (docs/experiments.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool

from services.api import deps
from services.api.experiment_schemas import ExperimentList, ExperimentReport
from services.api.schemas import ErrorBody
from services.serving.experiment_report import experiment_report
from services.serving.experiments import NAME_CHARS, Experiment

router = APIRouter(tags=["experiments"])


async def _report(request: Request, rt: deps.RuntimeDep, experiment: Experiment) -> dict[str, Any]:
    report = await run_in_threadpool(
        experiment_report, rt, request.app.state.experiments, request.app.state.exposures, experiment
    )
    for name, variant in report["variants"].items():
        request.app.state.metrics.hits.labels(experiment.name, name).set(variant["hits"])
    return report


@router.get("/experiments", response_model=ExperimentList, response_model_by_alias=True)
async def list_experiments(request: Request, rt: deps.RuntimeDep) -> dict[str, Any]:
    """Every configured experiment's report (NEXTWATCH_EXPERIMENTS; none: an empty list)."""
    experiments = request.app.state.experiments.current().values()
    return {"experiments": [await _report(request, rt, e) for e in experiments]}


@router.get(
    "/experiments/{name}",
    response_model=ExperimentReport,
    response_model_by_alias=True,
    responses={404: {"model": ErrorBody, "description": "no such experiment"}},
)
async def experiment(
    request: Request,
    rt: deps.RuntimeDep,
    name: Annotated[str, Path(min_length=1, max_length=NAME_CHARS, examples=["next-list"])],
) -> dict[str, Any]:
    """Per variant: exposures, hits, HR@10 with its user-bootstrap interval, the offline history-protocol HR@10;
    each variant against the control with an unpaired interval."""
    found = request.app.state.experiments.current().get(name)
    if found is None:
        raise HTTPException(status_code=404, detail=f"experiment {name!r} is not configured")
    return await _report(request, rt, found)
