"""Start the API server (uvicorn, one process) over a built data dir."""

from __future__ import annotations

import faulthandler
import sys

import uvicorn
from uvicorn.importer import import_from_string

from services.serving.runtime import check_servable, open_runtime
from services.settings import Settings

# the API's app factory, named rather than imported: the serving layer imports nothing from the API
APP_FACTORY = "services.api.app:create_app"


class NotServable(RuntimeError):
    """The data dir holds nothing the API can serve yet (the message names the command that builds it)."""


def serve(settings: Settings) -> None:
    """Serve the API on ``settings.api.host:port`` until interrupted; NotServable when nothing is built."""
    # a fatal signal (SIGBUS from a mapped table cut short under the server, SIGSEGV) prints every thread's
    # traceback to the process's stderr, so the log says why it died before its restart policy restarts it
    faulthandler.enable(file=sys.__stderr__ or sys.stderr)
    problem = check_servable(settings)
    if problem:
        raise NotServable(problem)
    # an unreadable store stops here, in one line, not inside uvicorn's lifespan; the app owns the runtime
    # from here on (it swaps in each new build generation and closes the last one)
    runtime = open_runtime(settings, serving=True)
    create_app = import_from_string(APP_FACTORY)
    # the app writes its own access log (JSON lines with request ids): uvicorn's would repeat it
    uvicorn.run(
        create_app(settings, runtime=runtime, owns_runtime=True),
        host=settings.api.host,
        port=settings.api.port,
        log_level="info",
        access_log=False,
    )
