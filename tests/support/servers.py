"""Helpers for the evaluator's tests: a private copy of the built data dir, a live server on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from services.settings import Settings

# evaluation artifacts a test must not inherit from the shared build
EVAL_ARTIFACTS = ("evaluation", "tuned.json", "report")


def private_copy(built: Settings, dest: Path, **overrides: object) -> Settings:
    """Settings over a copy of the built data dir (without evaluation artifacts), so tests may write to it."""
    shutil.copytree(built.data_dir, dest, ignore=shutil.ignore_patterns(*EVAL_ARTIFACTS, "*.lock"))
    return Settings(data_dir=dest, **overrides)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(settings: Settings) -> Iterator[str]:
    """The API over `settings`, served by uvicorn in a thread on 127.0.0.1; yields its base URL."""
    from services.api.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_for(server: subprocess.Popen[str], url: str, seconds: float = 120) -> None:
    """Until the server process answers /health (failing when it exits)."""
    deadline = time.monotonic() + seconds
    while True:
        assert server.poll() is None, server.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the server did not start"
        try:
            httpx.get(f"{url}/health")
            return
        except httpx.TransportError:
            time.sleep(0.1)
