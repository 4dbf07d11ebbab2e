"""Failures as JSON answers: a store that is down is a 503 naming it; anything else a 500 without a trace.

A 422 repeats each invalid input only in short: text cut to `ECHO_CHARS`, a number JSON cannot write
(NaN, Infinity) as text, a list or object as the start of its text.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.serving.guards import StoreUnavailable

log = logging.getLogger(__name__)
ECHO_CHARS = 100  # the most of an invalid input a 422 repeats


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on the app."""
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(Exception, _internal_error)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{**error, "input": echo(error["input"])} if "input" in error else error for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def echo(value: Any) -> Any:
    """An invalid input as a 422 may repeat it: JSON-safe and short."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else echo(str(value))
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("request %s: %s", _request_id(request), exc)
    return JSONResponse({"detail": str(exc)}, status_code=503)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = _request_id(request)
    log.error("request %s failed", request_id, exc_info=exc)
    return JSONResponse({"detail": "internal error", "request_id": request_id}, status_code=500)


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))
