"""Operations routes: liveness, readiness (which part is not reachable) and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from services.api import deps
from services.api.schemas import Health, Readiness
from services.recommender import registry
from services.serving.guards import StoreUnavailable
from services.serving.runtime import Runtime

router = APIRouter(tags=["ops"])


@router.get("/health", response_model=Health)
@router.head("/health", include_in_schema=False)  # what load balancers and uptime checks often send
async def health() -> Health:
    """The process is alive (answered on the event loop: it never waits for a worker thread)."""
    return Health()


GENERATION_HEADER = "X-Build-Generation"  # the build generation answering (embedded default)


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness, "description": "not ready"}})
def ready(rt: deps.RuntimeDep) -> JSONResponse:
    """Catalog, vectors and ALS model loaded and answering; 503 naming the parts that are not (missing,
    unreachable, or damaged: an artifact that failed its checksum)."""
    parts = _check(rt)
    missing = [name for name, state in parts.items() if state != "ok"]
    body = Readiness(status="unavailable" if missing else "ready", parts=parts, missing=missing)
    served = {GENERATION_HEADER: rt.settings.generation} if rt.settings.generation else None
    return JSONResponse(body.model_dump(), status_code=503 if missing else 200, headers=served)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(observed: deps.MetricsDep) -> Response:
    """Request counts and latency histograms per route and strategy, degraded answers per missing part."""
    body, content_type = observed.render()
    return Response(content=body, media_type=content_type)


def _check(rt: Runtime) -> dict[str, str]:
    parts = {"catalog": _probe(rt, "catalog", rt.catalog.ping)}
    for part in registry.parts()[1:]:
        if part in rt.damaged:
            parts[part] = rt.damaged[part]
        elif part in rt.missing:
            parts[part] = "missing"
        elif part == "vectors" and rt.vectors is not None:
            parts[part] = _probe(rt, part, rt.vectors.info)
        else:
            parts[part] = "ok"
    return parts


def _probe(rt: Runtime, part: str, call: Callable[[], object]) -> str:
    """ "ok", or why the part did not answer ("missing": a vector store without its collection answers
    None, a catalog without its file False)."""
    try:
        answer = rt.guards[part].call(call)
    except StoreUnavailable as exc:
        return exc.reason
    return "missing" if answer is None or answer is False else "ok"
