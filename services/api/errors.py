"""Failures as JSON answers: a store that is down is a 503 naming it; anything else a 500 without a trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.serving.guards import StoreUnavailable

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on the app."""
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(Exception, _internal_error)


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("request %s: %s", _request_id(request), exc)
    return JSONResponse({"detail": str(exc)}, status_code=503)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = _request_id(request)
    log.error("request %s failed", request_id, exc_info=exc)
    return JSONResponse({"detail": "internal error", "request_id": request_id}, status_code=500)


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))
