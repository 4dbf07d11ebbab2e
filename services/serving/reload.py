"""Hot reload: when a build switches the data dir's `current` pointer, the API swaps in the new build.

A watcher thread polls the pointer (every ``reload_poll_seconds``; SIGHUP asks at once). On a change it
opens a runtime over the new generation beside the served one, swaps it in with one assignment (a
request uses the runtime it started with), and closes the old one after a grace period, so no request
fails during the switch. A generation that cannot be opened is logged and the old one keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from services.serving.runtime import Runtime
from services.stores.generations import GenerationError, current_generation

log = logging.getLogger(__name__)
GRACE_SECONDS = 10.0  # requests answer within the store time limit (2 s): the old runtime outlives them


class GenerationWatcher:
    """Keeps `holder.runtime` on the generation the pointer names; `on_swap(runtime)` after each swap, and
    `on_retired()` once the runtime it replaced is closed and nothing here refers to it any more."""

    def __init__(
        self,
        holder: Any,
        open_generation: Callable[[str], Runtime],
        *,
        poll_seconds: float,
        on_swap: Callable[[Runtime], None] = lambda runtime: None,
        on_retired: Callable[[], None] = lambda: None,
    ) -> None:
        self._holder = holder
        self._open = open_generation
        self._poll = poll_seconds
        self._on_swap = on_swap
        self._on_retired = on_retired
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._failed: str | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="generation-watcher", daemon=True)

    @property
    def serving(self) -> str | None:
        return self._holder.runtime.settings.generation

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        """Check the pointer now (SIGHUP)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def check(self) -> bool:
        """Swap in the generation the pointer names if it is new; whether a swap happened."""
        with self._lock:
            runtime = self._holder.runtime
            try:
                wanted = current_generation(runtime.settings.data_dir)
            except GenerationError as exc:
                log.error("not reloading: %s", exc)
                return False
            if wanted is None or wanted == runtime.settings.generation or wanted == self._failed:
                return False
            try:
                fresh = self._open(wanted)
            except Exception:
                log.exception(
                    "build generation %s cannot be opened: still serving %s", wanted, runtime.settings.generation
                )
                self._failed = wanted
                return False
            self._holder.runtime = fresh
            self._on_swap(fresh)
            log.info("serving build generation %s (was %s)", wanted, runtime.settings.generation)
            closer = threading.Timer(GRACE_SECONDS, self._retire, args=([runtime],))
            closer.daemon = True
            closer.start()
            return True

    def _retire(self, replaced: list[Runtime]) -> None:
        """Close the replaced runtime (taken out of the list the timer holds, so that it can be collected)."""
        replaced.pop().close()
        self._on_retired()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._poll)
            self._wake.clear()
            if not self._stop.is_set():
                self.check()
