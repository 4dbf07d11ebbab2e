"""Start the API server (uvicorn, one process) over a built data dir."""

from __future__ import annotations

import uvicorn

from services.serving.runtime import check_servable, open_runtime
from services.settings import Settings


class NotServable(RuntimeError):
    """The data dir holds nothing the API can serve yet (the message names the command that builds it)."""


def serve(settings: Settings) -> None:
    """Serve the API on ``settings.host:settings.port`` until interrupted; NotServable when nothing is built."""
    from services.api.app import create_app, pin_generation

    problem = check_servable(settings)
    if problem:
        raise NotServable(problem)
    # an unreadable store stops here, in one line, not inside uvicorn's lifespan; the app owns the runtime
    # from here on (it swaps in each new build generation and closes the last one)
    runtime = open_runtime(pin_generation(settings), serving=True)
    # the app writes its own access log (JSON lines with request ids): uvicorn's would repeat it
    uvicorn.run(
        create_app(settings, runtime=runtime, owns_runtime=True),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
    )
