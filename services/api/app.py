"""FastAPI application factory: stores and models are opened once, in the lifespan."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.api.routes import router
from services.runtime import Runtime, open_runtime
from services.settings import Settings


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """The API over an already-built data dir (or over a runtime the caller owns)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = runtime or open_runtime(settings or Settings())
        try:
            yield
        finally:
            if owned:
                app.state.runtime.close()

    app = FastAPI(
        title="nextwatch",
        version="0.1.0",
        description="What to watch next: series, overview-vector and collaborative recommendations.",
        lifespan=lifespan,
    )
    app.include_router(router)
    return app
