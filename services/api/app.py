"""FastAPI application factory: stores and models are opened once, in the lifespan, and shared."""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from services.api import (
    compat,
    deps,
    events,
    experiments,
    facets,
    history,
    movies,
    ops,
    page,
    recommendations,
    report_files,
    search,
    users,
)
from services.api.errors import install_error_handlers
from services.api.limits import BodyLimit
from services.api.observability import REQUEST_ID_HEADER, Metrics, RequestObserver, enable_access_log
from services.api.writes import WriteAccess
from services.serving.experiments import ExperimentBook
from services.serving.reload import GenerationWatcher
from services.serving.runtime import Runtime, open_runtime
from services.serving.titles import TitleIndex
from services.settings import Settings
from services.stores.events import EventStore
from services.stores.exposures import ExposureStore
from services.stores.generations import generations

_HEAP_LOCK = threading.Lock()  # gc.freeze and gc.unfreeze act on the whole process: one at a time
DESCRIPTION = """What to watch next: series, overview-vector and collaborative recommendations over a
MovieLens catalogue with Korean titles.

Errors are JSON `{"detail": ...}`: unknown ids 404, invalid parameters 422 (a NUL character in any text
too), oversize lists and bodies over NEXTWATCH_MAX_BODY_BYTES 413, a body not sent within
NEXTWATCH_BODY_TIMEOUT_SECONDS 408, a store that does not answer in time 503. Every response carries an
`X-Request-ID` (yours, or a new one)."""


def generation_opener(settings: Settings) -> Callable[[str], Runtime]:
    """Opens a build generation of the settings' data dir for serving (a reload, or an experiment's pin)."""

    def open_generation(generation: str) -> Runtime:
        return open_runtime(settings.model_copy(update={"generation": generation}), serving=True)

    return open_generation


def watch_generations(app: FastAPI) -> GenerationWatcher:
    """Reload the app's runtime when a build switches generations (polling; SIGHUP checks at once)."""
    base = app.state.runtime.settings

    def swapped(fresh: Runtime) -> None:
        app.state.titles = TitleIndex(fresh)

    def retired() -> None:
        """The replaced build is closed: collect what it left (frozen with the heap, see create_app), then freeze
        the heap that serves now. One full collection per reload (~0.1 s), none in between."""
        with _HEAP_LOCK:
            if getattr(app.state, "heap_frozen", False):
                gc.unfreeze()
                gc.collect()
                gc.freeze()

    watcher = GenerationWatcher(
        app.state,
        generation_opener(base),
        poll_seconds=base.api.reload_poll_seconds,
        on_swap=swapped,
        on_retired=retired,
    )
    watcher.start()
    if threading.current_thread() is threading.main_thread():  # signal handlers: main thread only
        signal.signal(signal.SIGHUP, lambda signum, frame: watcher.poke())
    return watcher


def create_app(
    settings: Settings | None = None, runtime: Runtime | None = None, *, owns_runtime: bool | None = None
) -> FastAPI:
    """The API over an already-built data dir, or over `runtime` (the caller's to close, unless
    `owns_runtime`). An app that owns its runtime reloads it when a build switches generations."""
    settings = settings or (runtime.settings if runtime is not None else Settings())
    owned = runtime is None if owns_runtime is None else owns_runtime

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = runtime or open_runtime(settings, serving=True)
        app.state.titles = TitleIndex(app.state.runtime)
        app.state.events = EventStore(settings.events_store_url)
        app.state.exposures = ExposureStore(app.state.events)
        app.state.writes.log_mode()
        watcher = watch_generations(app) if owned and settings.api.reload_poll_seconds > 0 else None
        # the objects alive now (the opened build, the app: ~100K) leave the garbage collector's full collections,
        # which would otherwise walk them again and again (90 ms a collection on the sample's build under load) in
        # the middle of whichever request allocated last; a reload collects and freezes again (watch_generations)
        with _HEAP_LOCK:
            gc.freeze()
            app.state.heap_frozen = True
        try:
            yield
        finally:
            with _HEAP_LOCK:
                app.state.heap_frozen = False
                gc.unfreeze()
            if watcher is not None:
                watcher.stop()
            app.state.experiments.close()
            app.state.exposures.close()
            app.state.events.close()
            if owned:
                app.state.runtime.close()

    # /docs and /redoc load their scripts and styles from the package, not from a CDN: they work offline
    app = FastAPIOffline(
        title="nextwatch",
        version=version("nextwatch"),
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(deps.reject_nul)],
    )
    routers = (movies, recommendations, history, events, users, compat, ops, search, facets, report_files, experiments)
    for module in (*routers, page):
        app.include_router(module.router)
    app.state.writes = WriteAccess(settings.api)  # a key file it cannot read stops the app here
    # so does a bad experiments file (a variant may pin a generation the data dir holds)
    app.state.experiments = ExperimentBook.open(
        settings.experiments, lambda: generations(settings.data_dir), generation_opener(settings)
    )
    install_error_handlers(app)
    # innermost, so that its 413 and 408 answers also get CORS headers and request ids, and are counted
    app.add_middleware(BodyLimit, max_bytes=settings.api.max_body_bytes, seconds=settings.api.body_timeout_seconds)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["*"],
            expose_headers=[REQUEST_ID_HEADER],
        )
    app.state.metrics = Metrics()
    app.add_middleware(RequestObserver, metrics=app.state.metrics)
    if settings.api.access_log:
        enable_access_log()
    return app
