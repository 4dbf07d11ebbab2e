"""Time limits on store calls: each part (catalog, vectors, model) runs its calls on its own thread pool.

A call that does not answer in time, or raises, becomes :class:`StoreUnavailable` naming the part; the
stuck call keeps its worker thread until it returns, but it can only starve its own part's pool, never
another part's. ``timeout=None`` runs calls inline (the evaluator's batch calls need no limit).

Inside :func:`in_memory_only` (the API's event loop) no store call may start: :meth:`Guard.call` raises
:class:`WouldBlock` instead, and the caller does the whole piece of work again on a worker thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread

from services.recommender.registry import store_parts
from services.stores.errors import logged

if TYPE_CHECKING:  # pragma: no cover
    from services.recommender.base import Source

log = logging.getLogger(__name__)
T = TypeVar("T")


_IN_MEMORY_ONLY: ContextVar[bool] = ContextVar("nextwatch_in_memory_only", default=False)


class WouldBlock(BaseException):
    """A store call was about to start where only in-memory work may run.

    A BaseException, like asyncio's CancelledError, so that the strategies' "answer without a failed
    optional source" handlers (which catch Exception) let it through to the caller instead of degrading.
    """

    def __init__(self, part: str) -> None:
        super().__init__(f"a {part} call cannot run here")
        self.part = part


@contextmanager
def in_memory_only() -> Iterator[None]:
    """Within the block, any guarded store call raises :class:`WouldBlock` instead of running."""
    token = _IN_MEMORY_ONLY.set(True)
    try:
        yield
    finally:
        _IN_MEMORY_ONLY.reset(token)


async def on_the_loop_unless_blocking(fn: Callable[[], T]) -> T:
    """fn() right here on the event loop when it needs only memory (neighbour tables, models, caches);
    when it reaches for a store, the whole of fn() again on a worker thread, where the call may wait."""
    try:
        with in_memory_only():
            return fn()
    except WouldBlock:
        return await anyio.to_thread.run_sync(fn)


class StoreUnavailable(RuntimeError):
    """A store call failed or did not answer in time."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"{part} unavailable: {reason}")
        self.part = part
        self.reason = reason


class Guard:
    """Runs one part's blocking calls on its own small thread pool, each within `timeout` seconds."""

    def __init__(self, part: str, timeout: float | None, workers: int = 8) -> None:
        self.part = part
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"store-{part}") if timeout else None

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """fn(*args, **kwargs) within the time limit; StoreUnavailable when it raises or times out,
        WouldBlock inside :func:`in_memory_only`."""
        return self.start(fn, *args, **kwargs)()

    def start(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Callable[[], T]:
        """fn(*args, **kwargs) started now on the part's pool (run when waited for without a time limit); the
        callable returned waits for its result as :meth:`call` does, the time limit counting from now.
        WouldBlock at once inside :func:`in_memory_only`."""
        if _IN_MEMORY_ONLY.get():
            raise WouldBlock(self.part)
        if self._pool is None or self.timeout is None:
            return lambda: self._answer(fn, lambda: fn(*args, **kwargs))
        timeout, deadline = self.timeout, time.monotonic() + self.timeout
        try:
            future = self._pool.submit(fn, *args, **kwargs)
        except RuntimeError as exc:  # the pool is shut down (a reload closed the runtime): fails when waited for
            future = Future()
            future.set_exception(exc)

        def wait() -> T:
            try:
                return future.result(timeout=max(deadline - time.monotonic(), 0.0))
            except FutureTimeout:
                future.cancel()
                raise StoreUnavailable(self.part, f"no answer within {timeout:g} s") from None

        return lambda: self._answer(fn, wait)

    def _answer(self, fn: Callable[..., T], result: Callable[[], T]) -> T:
        """result(); StoreUnavailable (logged) when it raises anything else."""
        try:
            return result()
        except StoreUnavailable:
            raise
        except Exception as exc:
            # the details (a driver's message may hold the SQL and its parameters) go to one log line, and
            # the reason, which answers may show, names only the error's type
            log.warning(
                "%s call %s failed: %s: %s", self.part, getattr(fn, "__qualname__", fn), type(exc).__name__, logged(exc)
            )
            raise StoreUnavailable(self.part, type(exc).__name__) from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


class Guards:
    """One :class:`Guard` per part, sharing a time limit."""

    def __init__(self, timeout: float | None, workers: int = 8) -> None:
        self.timeout = timeout
        guarded = ("catalog", *dict.fromkeys(store_parts().values()))
        self._guards = {part: Guard(part, timeout, workers) for part in guarded}

    def __getitem__(self, part: str) -> Guard:
        return self._guards[part]

    def close(self) -> None:
        for guard in self._guards.values():
            guard.close()


class GuardedSource:
    """A candidate source whose every call (all its store work: one thread hop) goes through a guard."""

    def __init__(self, source: Source, guard: Guard) -> None:
        self.name = source.name
        self._source = source
        self._guard = guard

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        return self._guard.call(self._source.candidates, movie_ids, k)

    def start(self, movie_ids: Sequence[int], k: int) -> Callable[[], list[list[tuple[int, float]]]]:
        """`candidates(movie_ids, k)` started now; the callable returned waits for it (:meth:`Guard.start`)."""
        return self._guard.start(self._source.candidates, movie_ids, k)
