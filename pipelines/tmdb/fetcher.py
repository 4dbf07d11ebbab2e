"""The async TMDB fetcher: concurrent, rate-limited and retried; it appends records to an open checkpoint.

One request per movie, ``GET /3/movie/{id}?language=ko-KR&append_to_response=translations``, gives the
Korean fields and the English fallback (see `pipelines.tmdb.mapping`); ``GET /3/collection/{id}`` gives a
collection's Korean name and members.

* ``concurrency`` workers share one leaky-bucket limiter (aiolimiter) of ``rate_limit`` requests/s
  with no burst: every attempt, retries included, takes a slot.
* Whatever a flaky network or server gives is retried (tenacity) with exponential backoff and jitter:
  429, 5xx, timeouts, reset or dropped connections, and a 200 whose body is cut short or is not JSON
  (what a dropped connection behind a proxy gives).  A ``Retry-After`` is honoured and, on a 429,
  pauses every worker.  Only what still fails after the last retry is recorded as failed (and
  ``--retry-failed`` takes it again).  A 404 is recorded as "not on TMDB" and never retried; other 4xx
  and a JSON answer without an id are recorded as failures; a 401 stops the run, and so do
  `MAX_FAILURES_IN_A_ROW` failures in a row (a wrong base URL, TMDB down).
* A movie payload is stored with its Korean and English translations only (TMDB sends dozens; 87,000
  full payloads would be gigabytes).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
)
from tenacity.wait import wait_base, wait_exponential_jitter
from tqdm import tqdm

from pipelines.tmdb.checkpoint import Checkpoint
from pipelines.tmdb.credentials import Credentials, RedactSecrets, redact
from pipelines.tmdb.errors import TmdbAuthError, TmdbError
from pipelines.tmdb.mapping import (
    FAILED,
    NOT_FOUND,
    OK,
    overview_language,
    slim_payload,
)
from services.settings import Settings

log = logging.getLogger(__name__)

Kind = Literal["movie", "collection"]
ENDPOINTS: dict[str, tuple[str, dict[str, str]]] = {
    "movie": ("/3/movie/{id}", {"language": "ko-KR", "append_to_response": "translations"}),
    "collection": ("/3/collection/{id}", {"language": "ko-KR"}),
}
MAX_RETRY_AFTER = 300.0  # seconds; a longer Retry-After is capped
MAX_FAILURES_IN_A_ROW = 25  # then the run stops: TMDB (or the base URL) is not answering usefully
# worth another attempt besides _Retryable and _Unreadable answers: a timeout, a reset or refused
# connection, an answer cut short (Content-Length not reached) or whose encoding does not decode
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.DecodingError)


@dataclass(frozen=True)
class FetchOptions:
    base_url: str = "https://api.themoviedb.org"
    rate_limit: float = 40.0  # requests per second
    concurrency: int = 8
    timeout: float = 10.0  # seconds per attempt
    max_retries: int = 5  # retries after the first attempt
    backoff_base: float = 1.0
    backoff_max: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> FetchOptions:
        values: dict[str, Any] = {
            "base_url": settings.tmdb.base_url,
            "rate_limit": settings.tmdb.rate_limit,
            "concurrency": settings.tmdb.concurrency,
            "timeout": settings.tmdb.timeout,
            "max_retries": settings.tmdb.max_retries,
            "backoff_base": settings.tmdb.backoff_base,
            "backoff_max": settings.tmdb.backoff_max,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"the TMDB base URL must start with http:// or https://, not {self.base_url!r}")
        if self.rate_limit <= 0 or self.concurrency < 1 or self.timeout <= 0 or self.max_retries < 0:
            raise ValueError("TMDB rate limit and timeout must be > 0, concurrency >= 1, retries >= 0")


@dataclass
class FetchSummary:
    kind: str = "movie"
    wanted: int = 0  # distinct ids asked for
    already_done: int = 0  # ids with a record before this run (failed ones count when not retried)
    requested: int = 0  # ids fetched in this run
    fetched: int = 0
    not_found: int = 0
    failed: int = 0
    english_fallback: int = 0  # fetched movies whose overview falls back to English
    requests: int = 0  # HTTP attempts, retries included
    retries: int = 0
    seconds: float = 0.0
    remaining: int = 0  # ids still without a record (--limit, interruption)
    failed_total: int = 0  # ids whose last record is a failure (retry with --retry-failed)

    def describe(self) -> str:
        what = "movies" if self.kind == "movie" else "collections"
        rate = self.requests / self.seconds if self.seconds else 0.0
        return (
            f"tmdb {what}: {self.fetched:,} fetched, {self.not_found:,} not on TMDB, {self.failed:,} failed"
            + (f", {self.english_fallback:,} with an English overview" if self.kind == "movie" else "")
            + f" ({self.requests:,} requests, {self.retries:,} retries, {self.seconds:.1f} s, {rate:.1f} req/s); "
            f"{self.already_done:,} already in the checkpoint, {self.remaining:,} still missing, "
            f"{self.failed_total:,} failed in all"
        )


class _Retryable(Exception):
    """A 429/5xx answer worth retrying."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class _Unreadable(Exception):
    """A 200 answer whose body is not JSON: cut short by a dropped connection, worth retrying."""


class _WaitRetryAfterOrBackoff(wait_base):
    """Retry-After when the server sent one, else exponential backoff with jitter."""

    def __init__(self, base: float, cap: float) -> None:
        self._backoff = wait_exponential_jitter(initial=base, max=cap, jitter=base)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return exc.retry_after
        return float(self._backoff(retry_state))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class TmdbFetcher:
    """Fetches TMDB records into a checkpoint; use inside `async with`."""

    def __init__(
        self, options: FetchOptions, credentials: Credentials, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.options = options
        self._credentials = credentials
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._limiter: AsyncLimiter | None = None
        self._pause_until = 0.0
        self._filter = RedactSecrets(credentials.secrets())
        self._abort: BaseException | None = None
        self._failures_in_a_row = 0
        self.requests = 0
        self.retries = 0

    async def __aenter__(self) -> TmdbFetcher:
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).addFilter(self._filter)
        self._client = httpx.AsyncClient(
            base_url=self.options.base_url,
            headers={"Accept": "application/json", "User-Agent": "nextwatch", **self._credentials.headers()},
            params=self._credentials.params(),
            timeout=httpx.Timeout(self.options.timeout),
            limits=httpx.Limits(
                max_connections=self.options.concurrency, max_keepalive_connections=self.options.concurrency
            ),
            transport=self._transport,
            follow_redirects=False,
        )
        # no burst: one slot per 1/rate seconds, so no one-second window ever sees more than rate + 1
        self._limiter = AsyncLimiter(1, 1.0 / self.options.rate_limit)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).removeFilter(self._filter)

    def _redact(self, text: str) -> str:
        return redact(text, self._credentials.secrets())

    async def fetch(
        self,
        kind: Kind,
        ids: Sequence[int],
        checkpoint: Checkpoint,
        *,
        progress: bool = False,
        on_record: Callable[[dict[str, Any]], None] | None = None,
    ) -> FetchSummary:
        """Fetch `ids` (all of them: plan first) and append each record to the open checkpoint."""
        summary = FetchSummary(kind=kind, requested=len(ids))
        queue = deque(ids)
        started = time.perf_counter()
        requests0, retries0 = self.requests, self.retries
        with tqdm(total=len(ids), desc=f"tmdb {kind}s", unit=kind, disable=not progress, smoothing=0.05) as bar:

            async def worker() -> None:
                while queue and self._abort is None:
                    tmdb_id = queue.popleft()
                    try:
                        record = await self.fetch_one(kind, tmdb_id)
                    except TmdbAuthError as exc:
                        self._abort = exc
                        return
                    checkpoint.append(record)
                    status = record["status"]
                    if status == OK:
                        summary.fetched += 1
                        if kind == "movie" and overview_language(record["data"]) == "en":
                            summary.english_fallback += 1
                    elif status == NOT_FOUND:
                        summary.not_found += 1
                    else:
                        summary.failed += 1
                        log.warning("tmdb %s %d failed: %s", kind, tmdb_id, record["error"])
                    self._failures_in_a_row = self._failures_in_a_row + 1 if status == FAILED else 0
                    if self._failures_in_a_row >= MAX_FAILURES_IN_A_ROW and self._abort is None:
                        self._abort = TmdbError(
                            f"stopped after {self._failures_in_a_row} failures in a row (last: {record['error']}); "
                            "check NEXTWATCH_TMDB_BASE_URL and the network, then run again with --retry-failed"
                        )
                    bar.update(1)
                    bar.set_postfix(ok=summary.fetched, missing=summary.not_found, failed=summary.failed, refresh=False)
                    if on_record is not None:
                        on_record(record)

            tasks = [asyncio.create_task(worker()) for _ in range(min(self.options.concurrency, len(ids)))]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                summary.seconds = time.perf_counter() - started
                summary.requests = self.requests - requests0
                summary.retries = self.retries - retries0
        if self._abort is not None:
            raise self._abort
        return summary

    async def fetch_one(self, kind: Kind, tmdb_id: int) -> dict[str, Any]:
        """One checkpoint record for one id (retries inside); raises only TmdbAuthError."""
        path, params = ENDPOINTS[kind]
        path = path.format(id=int(tmdb_id))
        attempts = self.options.max_retries + 1
        try:
            status, payload = await self._get_with_retries(path, params, kind, tmdb_id)
        except (_Retryable, _Unreadable) as exc:
            return _failed(tmdb_id, f"{exc} after {attempts} attempts")
        except httpx.HTTPError as exc:
            detail = self._redact(str(exc)).strip()
            tried = f" after {attempts} attempts" if isinstance(exc, _TRANSIENT) else ""
            return _failed(tmdb_id, f"{type(exc).__name__}{tried}" + (f": {detail}" if detail else ""))
        if status == 200:
            if not isinstance(payload, dict) or payload.get("id") is None:
                return _failed(tmdb_id, "unexpected payload (no id)")
            return {
                "tmdb_id": tmdb_id,
                "status": OK,
                "fetched_at": _stamp(),
                "language": params["language"],
                "data": slim_payload(payload) if kind == "movie" else payload,
            }
        if status == 404:
            return {"tmdb_id": tmdb_id, "status": NOT_FOUND, "fetched_at": _stamp()}
        if status == 401:
            raise TmdbAuthError(
                f"TMDB refused the {self._credentials.method} (HTTP 401): check TMDB_READ_ACCESS_TOKEN / TMDB_API_KEY"
            )
        return _failed(tmdb_id, f"HTTP {status}")

    async def _get_with_retries(self, path: str, params: dict[str, str], kind: str, tmdb_id: int) -> tuple[int, Any]:
        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1
            exc = state.outcome.exception() if state.outcome is not None else None
            reason = str(exc) if isinstance(exc, (_Retryable, _Unreadable)) else type(exc).__name__
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            log.info(
                "tmdb %s %d: %s, retry %d/%d in %.2f s",
                kind,
                tmdb_id,
                reason,
                state.attempt_number,
                self.options.max_retries,
                wait,
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.options.max_retries + 1),
            wait=_WaitRetryAfterOrBackoff(self.options.backoff_base, self.options.backoff_max),
            retry=retry_if_exception_type((_Retryable, _Unreadable, *_TRANSIENT)),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(path, params)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        """One request: (status, the JSON of a 200 or None); raises what is worth retrying."""
        assert self._client is not None and self._limiter is not None, "use the fetcher in `async with`"
        loop = asyncio.get_running_loop()
        while (delay := self._pause_until - loop.time()) > 0:
            await asyncio.sleep(delay)
        await self._limiter.acquire()
        self.requests += 1
        response = await self._client.get(path, params=params)
        status = response.status_code
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if status == 429 and retry_after:
                self._pause_until = max(self._pause_until, loop.time() + retry_after)
            raise _Retryable(status, retry_after)
        if status != 200:
            return status, None
        try:
            return status, response.json()
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError: the body was cut short
            raise _Unreadable(f"malformed JSON ({self._redact(str(exc))[:200]})") from None


def _failed(tmdb_id: int, error: str) -> dict[str, Any]:
    return {"tmdb_id": tmdb_id, "status": FAILED, "fetched_at": _stamp(), "error": error}


def _stamp() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
