"""Request ids, structured access logs and Prometheus metrics, as one pure ASGI middleware."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ACCESS_LOGGER = "nextwatch.access"
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
# seconds; fine-grained around the 5 ms / 20 ms targets
BUCKETS = (0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The API's Prometheus metrics, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "nextwatch_http_requests",
            "HTTP requests answered",
            ["route", "method", "status", "strategy"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "nextwatch_http_request_duration_seconds",
            "time from request to the end of the response",
            ["route", "strategy"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.degraded = Counter(
            "nextwatch_degraded_responses",
            "answers given without a part of the stack",
            ["strategy", "missing"],
            registry=self.registry,
        )
        self.exposures = Counter(
            "nextwatch_experiment_exposures",
            "answers served under an experiment",
            ["experiment", "variant"],
            registry=self.registry,
        )
        self.hits = Gauge(
            "nextwatch_experiment_hits",
            "hits among the exposures, at the last report",
            ["experiment", "variant"],
            registry=self.registry,
            multiprocess_mode="mostrecent",  # workers: the last report any of them made
        )

    def observe(self, route: str, method: str, status: int, strategy: str, seconds: float) -> None:
        self.requests.labels(route, method, str(status), strategy).inc()
        self.latency.labels(route, strategy).observe(seconds)

    def count_degraded(self, strategy: str, missing: list[str]) -> None:
        for part in missing:
            self.degraded.labels(strategy, part).inc()

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type: under `nextwatch serve --workers N`
        (PROMETHEUS_MULTIPROC_DIR set) every worker's metrics, added up."""
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        workers = CollectorRegistry()
        MultiProcessCollector(workers)
        return generate_latest(workers), CONTENT_TYPE_LATEST


class RequestObserver:
    """Gives every request an id (X-Request-ID in, or a new one; echoed back), then counts, times and logs it.

    Routes may set ``request.state.strategy``; it labels the metrics and the log line.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "other"
            strategy = str(state.get("strategy", ""))
            self.metrics.observe(path, method, status, strategy, seconds)
            if self.log.isEnabledFor(logging.INFO):
                self.log.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "access": {
                            "request_id": request_id,
                            "method": scope["method"],
                            "path": scope["path"],
                            "query": scope.get("query_string", b"").decode("latin-1")[:500],
                            "route": path,
                            "strategy": strategy,
                            "status": status,
                            "duration_ms": round(seconds * 1000, 3),
                            "client": (scope.get("client") or ("", 0))[0],
                        }
                    },
                )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, then the access fields or the message."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            entry.update(access)
        else:
            entry["message"] = record.getMessage()
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def enable_access_log() -> None:
    """Send the access log to stderr as JSON lines (idempotent)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
