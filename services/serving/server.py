"""Start the API server (uvicorn) over a built data dir: one process, or a worker per core.

With more than one worker, `serve` imports the app's modules, reads the movie facts of an embedded catalog, and
uvicorn forks the workers from it; each makes its app from the import string and opens the build itself (the
mapped tables and answers are shared read-only through the page cache, the facts through the fork), follows
the `current` pointer with its own watcher, and counts its requests into a private PROMETHEUS_MULTIPROC_DIR
that `/metrics` aggregates (made empty by `serve`, removed when it stops).
"""

from __future__ import annotations

import ctypes
import faulthandler
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
import uvicorn._subprocess
from pydantic import SecretStr
from uvicorn.importer import import_from_string

from services.serving.servable import check_servable
from services.settings import Settings
from services.stores.scratch import private_dir

# the API's app factory, named rather than imported: the serving layer imports nothing from the API
APP_FACTORY = "services.api.app:create_app"
WORKER_APP = "services.serving.server:worker_app"
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PREFIX = "nextwatch-metrics-"  # this server's metrics directory: nextwatch-metrics-<pid>-...
# the settings `serve` was given (those set explicitly, as JSON), for its workers
WORKER_SETTINGS = "NEXTWATCH_WORKER_SETTINGS_JSON"
SERVER_PID = "NEXTWATCH_SERVER_PID"  # the workers' parent
PR_SET_PDEATHSIG = 1
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # as the CLI's
# how long a worker may leave uvicorn's ping unanswered before it is killed as hung and restarted: uvicorn's 5 s
# is less than a worker's start on a loaded machine (imports and mapping hold the GIL), a restart loop
WORKER_HEALTHCHECK_SECONDS = 60


class NotServable(RuntimeError):
    """The data dir holds nothing the API can serve yet (the message names the command that builds it)."""


def worker_count(settings: Settings) -> int:
    """The worker processes `serve` starts: ``api.workers``, 0 meaning one per core."""
    return settings.api.workers or os.cpu_count() or 1


def serve(settings: Settings) -> None:
    """Serve the API on ``settings.api.host:port`` until interrupted; NotServable when nothing is built."""
    # a fatal signal (SIGBUS from a mapped table cut short under the server, SIGSEGV) prints every thread's
    # traceback to the process's stderr, so the log says why it died before its restart policy restarts it
    faulthandler.enable(file=sys.__stderr__ or sys.stderr)
    problem = check_servable(settings)
    if problem:
        raise NotServable(problem)
    workers = worker_count(settings)
    if workers > 1:
        # a worker that cannot open the build fails its start, and uvicorn stops (no restart loop)
        with worker_environment(settings), _workers_forked_after_imports():
            from services.serving.runtime import read_facts_before_fork  # imported with the app's modules

            read_facts_before_fork(settings)
            uvicorn.run(
                WORKER_APP,
                factory=True,
                workers=workers,
                host=settings.api.host,
                port=settings.api.port,
                log_level="info",
                access_log=False,
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            )
        return
    from services.serving.runtime import open_runtime  # the parent of workers opens no build: each its own

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


@contextmanager
def worker_environment(settings: Settings) -> Iterator[None]:
    """The environment the workers start with: the settings given (explicit ones only, so tuned values
    still apply) and a new, empty metrics directory of this server's own, removed afterwards."""
    metrics = str(private_dir(METRICS_PREFIX))
    saved = {name: os.environ.get(name) for name in (METRICS_DIR, WORKER_SETTINGS, SERVER_PID)}
    os.environ[METRICS_DIR] = metrics
    os.environ[SERVER_PID] = str(os.getpid())
    os.environ[WORKER_SETTINGS] = json.dumps(_plain(settings.model_dump(exclude_unset=True)), default=str)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(metrics, ignore_errors=True)


@contextmanager
def _workers_forked_after_imports() -> Iterator[None]:
    """The workers as forks of this process once it has imported the app's modules (not made an app: each worker
    opens its own build). uvicorn spawns them, a new interpreter each that imports everything again: 0.45 s to
    start and unpickle, then about 1 s of imports, both workers at once on 2 cores, before either opens the build
    (BENCHMARKS.md, session 11). Forked, they share the imported modules' pages. uvicorn keeps its start method
    in `uvicorn._subprocess.spawn` (0.54, pinned in requirements.lock); it is put back when the server stops."""
    import_from_string(APP_FACTORY)  # inside worker_environment: prometheus_client sees the metrics directory
    spawn = uvicorn._subprocess.spawn
    uvicorn._subprocess.spawn = multiprocessing.get_context("fork")  # type: ignore[assignment]
    try:
        yield
    finally:
        uvicorn._subprocess.spawn = spawn


def _plain(value: Any) -> Any:
    """Dumped settings with their secrets' values (the workers need the keys themselves)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def worker_app() -> Any:
    """One worker's app (uvicorn calls it in each worker process), over the settings `serve` was given; it
    logs as `nextwatch serve` does (whether hybrid's answers are mapped, reloads)."""
    faulthandler.enable(file=sys.__stderr__ or sys.stderr)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    _stop_with_parent()
    given = os.environ.get(WORKER_SETTINGS)
    settings = Settings(**json.loads(given)) if given else Settings()
    return import_from_string(APP_FACTORY)(settings)


def _stop_with_parent() -> None:
    """A worker gets SIGTERM when the server process dies, even by SIGKILL (Linux `PR_SET_PDEATHSIG`), so
    no worker serves on unsupervised after its server was killed."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the supervisor's own shutdown still stops the workers
        return
    if str(os.getppid()) != os.environ.get(SERVER_PID):  # it died before the signal was asked for
        os.kill(os.getpid(), signal.SIGTERM)
