"""Fetch Korean TMDB records: concurrent, rate-limited, retried and resumable (no CLI in here).

One request per movie, ``GET /3/movie/{id}?language=ko-KR&append_to_response=translations``, gives the
Korean fields and the English fallback (see `pipelines.tmdb_mapping`); ``GET /3/collection/{id}`` gives a
collection's Korean name and members.

* Auth comes from ``TMDB_READ_ACCESS_TOKEN`` (Bearer header, preferred) or ``TMDB_API_KEY`` (query
  parameter).  Neither is ever logged, stored or put into an error message: our messages never carry a
  URL, and a filter masks them in httpx's own request log.
* ``concurrency`` workers share one leaky-bucket limiter (aiolimiter) of ``rate_limit`` requests/s
  with no burst: every attempt, retries included, takes a slot.
* 429, 5xx, timeouts and connection errors are retried (tenacity) with exponential backoff and jitter;
  a ``Retry-After`` is honoured and, on a 429, pauses every worker.  A 404 is recorded as "not on TMDB"
  and never retried; malformed JSON and other 4xx are recorded as failures; a 401 stops the run, and
  so do `MAX_FAILURES_IN_A_ROW` failures in a row (a wrong base URL, TMDB down).
* The checkpoint is JSON Lines, one object per response as it arrives (``tmdb_id``, ``status`` = ok |
  not_found | failed, ``fetched_at``, ``language`` and ``data`` or ``error``), flushed line by line.  The
  last line of an id wins; a run first compacts the file to one line per id (dropping a line cut short
  by a crash), then fetches only the ids without a line (and, with ``retry_failed``, the failed ones).
  A movie payload is stored with its Korean and English translations only (TMDB sends dozens; 87,000
  full payloads would be gigabytes), and reading the checkpoint streams it.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import httpx
import pandas as pd
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential_jitter
from tqdm import tqdm

from pipelines.tmdb_mapping import (
    FAILED,
    NOT_FOUND,
    OK,
    ApplyResult,
    apply_records,
    checkpoint_record,
    iter_ok_payloads,
    overview_language,
    slim_payload,
)
from services.settings import Settings
from services.stores.catalog import Catalog

log = logging.getLogger(__name__)

Kind = Literal["movie", "collection"]
ENDPOINTS: dict[str, tuple[str, dict[str, str]]] = {
    "movie": ("/3/movie/{id}", {"language": "ko-KR", "append_to_response": "translations"}),
    "collection": ("/3/collection/{id}", {"language": "ko-KR"}),
}
MAX_RETRY_AFTER = 300.0  # seconds; a longer Retry-After is capped
MAX_FAILURES_IN_A_ROW = 25  # then the run stops: TMDB (or the base URL) is not answering usefully
# worth another attempt: a 429/5xx answer (_Retryable), a timeout, a connection error, a dropped answer
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_REDACTED = "***"


class TmdbError(RuntimeError):
    """A TMDB run that cannot go on (no credentials, credentials refused)."""


class MissingCredentials(TmdbError):
    pass


class TmdbAuthError(TmdbError):
    pass


# ---- credentials ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """A TMDB read access token (Bearer) or API key; repr and str never show them."""

    token: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        token = settings.tmdb_read_access_token.get_secret_value().strip() if settings.tmdb_read_access_token else ""
        api_key = settings.tmdb_api_key.get_secret_value().strip() if settings.tmdb_api_key else ""
        if not token and not api_key:
            raise MissingCredentials(
                "no TMDB credentials: set TMDB_READ_ACCESS_TOKEN (preferred) or TMDB_API_KEY in the environment "
                "or in .env"
            )
        return cls(token=token or None, api_key=None if token else api_key)

    @property
    def method(self) -> str:
        return "read access token" if self.token else "API key"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def params(self) -> dict[str, str]:
        return {} if self.token or not self.api_key else {"api_key": self.api_key}

    def secrets(self) -> list[str]:
        return [s for s in (self.token, self.api_key) if s]

    def __str__(self) -> str:
        return f"Credentials({self.method})"


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


class _RedactSecrets(logging.Filter):
    """Masks secrets in records logged by httpx (its request log line carries the URL, api_key too)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message, self.secrets)
        if masked != message:
            record.msg, record.args = masked, None
        return True


# ---- options ------------------------------------------------------------------------------------


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
        values = {
            "base_url": settings.tmdb_base_url, "rate_limit": settings.tmdb_rate_limit,
            "concurrency": settings.tmdb_concurrency, "timeout": settings.tmdb_timeout,
            "max_retries": settings.tmdb_max_retries, "backoff_base": settings.tmdb_backoff_base,
            "backoff_max": settings.tmdb_backoff_max,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"the TMDB base URL must start with http:// or https://, not {self.base_url!r}")
        if self.rate_limit <= 0 or self.concurrency < 1 or self.timeout <= 0 or self.max_retries < 0:
            raise ValueError("TMDB rate limit and timeout must be > 0, concurrency >= 1, retries >= 0")


# ---- checkpoint ---------------------------------------------------------------------------------


class Checkpoint:
    """JSON Lines of fetched records, one per id after compaction; appends are flushed line by line.

    Reading never holds the payloads of the whole file in memory: an index pass keeps each id's last
    line number and status, and `records()` streams the payloads in a second pass.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None

    def _index(self) -> tuple[dict[int, tuple[int, str]], bool]:
        """tmdb_id -> (number of its last usable line, status); and whether the file is compact."""
        last: dict[int, tuple[int, str]] = {}
        clean = True
        for number, record in self._lines():
            if record is None:
                clean = False  # unreadable, or cut short by a crash: dropped, so the id is fetched again
                continue
            if record["tmdb_id"] in last:
                clean = False
                del last[record["tmdb_id"]]  # keep ids in order of their last line
            last[record["tmdb_id"]] = (number, record["status"])
        return last, clean

    def _lines(self) -> Iterator[tuple[int, dict[str, Any] | None]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle):
                record = None
                if line.endswith("\n"):
                    try:
                        record = checkpoint_record(json.loads(line))
                    except ValueError:
                        record = None
                yield number, record

    def statuses(self) -> dict[int, str]:
        """tmdb_id -> status of its last record."""
        return {tmdb_id: status for tmdb_id, (_, status) in self._index()[0].items()}

    def records(self) -> Iterator[dict[str, Any]]:
        """The last record of each id, streamed in file order."""
        last, _ = self._index()
        wanted = {number for number, _ in last.values()}
        for number, record in self._lines():
            if record is not None and number in wanted:
                yield record

    def read(self) -> dict[int, dict[str, Any]]:
        """tmdb_id -> its last record (everything in memory: for small checkpoints and tests)."""
        return {r["tmdb_id"]: r for r in self.records()}

    def compact(self) -> dict[int, str]:
        """Rewrite the file (atomically) with one line per id when it has duplicates or bad lines."""
        last, clean = self._index()
        if not clean:
            wanted = {number for number, _ in last.values()}
            tmp = self.path.with_name(self.path.name + ".tmp")
            with tmp.open("w", encoding="utf-8") as out:
                for number, record in self._lines():
                    if record is not None and number in wanted:
                        out.write(_line(record))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        return {tmdb_id: status for tmdb_id, (_, status) in last.items()}

    def open(self) -> Checkpoint:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")
        return self

    def append(self, record: Mapping[str, Any]) -> None:
        self._handle.write(_line(record))
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def __enter__(self) -> Checkpoint:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"


def plan(
    wanted: Iterable[int], done: Mapping[int, str], *, limit: int | None = None, retry_failed: bool = False,
) -> list[int]:
    """The ids to fetch, in `wanted` order: those without a record (plus failed ones), at most `limit`.

    `done` maps an id to the status of its last checkpoint record.
    """
    todo: list[int] = []
    for tmdb_id in dict.fromkeys(wanted):
        status = done.get(tmdb_id)
        if status is None or (retry_failed and status == FAILED):
            todo.append(tmdb_id)
    return todo if limit is None else todo[: max(limit, 0)]


# ---- fetching -----------------------------------------------------------------------------------


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
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
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
        self._filter = _RedactSecrets(credentials.secrets())
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
            limits=httpx.Limits(max_connections=self.options.concurrency,
                                max_keepalive_connections=self.options.concurrency),
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
                    bar.set_postfix(ok=summary.fetched, missing=summary.not_found, failed=summary.failed,
                                    refresh=False)
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
            response = await self._get_with_retries(path, params, kind, tmdb_id)
        except _Retryable as exc:
            return _failed(tmdb_id, f"HTTP {exc.status} after {attempts} attempts")
        except httpx.HTTPError as exc:
            detail = self._redact(str(exc)).strip()
            tried = f" after {attempts} attempts" if isinstance(exc, _TRANSIENT) else ""
            return _failed(tmdb_id, f"{type(exc).__name__}{tried}" + (f": {detail}" if detail else ""))
        status = response.status_code
        if status == 200:
            try:
                payload = response.json()
            except ValueError as exc:
                return _failed(tmdb_id, f"malformed JSON: {self._redact(str(exc))[:200]}")
            if not isinstance(payload, dict) or payload.get("id") is None:
                return _failed(tmdb_id, "unexpected payload (no id)")
            return {"tmdb_id": tmdb_id, "status": OK, "fetched_at": _stamp(), "language": params["language"],
                    "data": slim_payload(payload) if kind == "movie" else payload}
        if status == 404:
            return {"tmdb_id": tmdb_id, "status": NOT_FOUND, "fetched_at": _stamp()}
        if status == 401:
            raise TmdbAuthError(
                f"TMDB refused the {self._credentials.method} (HTTP 401): check TMDB_READ_ACCESS_TOKEN / TMDB_API_KEY"
            )
        return _failed(tmdb_id, f"HTTP {status}")

    async def _get_with_retries(self, path: str, params: dict[str, str], kind: str, tmdb_id: int) -> httpx.Response:
        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1
            exc = state.outcome.exception() if state.outcome is not None else None
            reason = str(exc) if isinstance(exc, _Retryable) else type(exc).__name__
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            log.info("tmdb %s %d: %s, retry %d/%d in %.2f s", kind, tmdb_id, reason, state.attempt_number,
                     self.options.max_retries, wait)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.options.max_retries + 1),
            wait=_WaitRetryAfterOrBackoff(self.options.backoff_base, self.options.backoff_max),
            retry=retry_if_exception_type((_Retryable, *_TRANSIENT)),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(path, params)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, path: str, params: dict[str, str]) -> httpx.Response:
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
        return response


def _failed(tmdb_id: int, error: str) -> dict[str, Any]:
    return {"tmdb_id": tmdb_id, "status": FAILED, "fetched_at": _stamp(), "error": error}


def _stamp() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


# ---- runs -----------------------------------------------------------------------------------


async def run_fetch(
    kind: Kind,
    wanted: Sequence[int],
    checkpoint_path: Path,
    options: FetchOptions,
    credentials: Credentials,
    *,
    limit: int | None = None,
    retry_failed: bool = False,
    progress: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> FetchSummary:
    """Compact the checkpoint, fetch what is missing (at most `limit`), append as it arrives."""
    checkpoint = Checkpoint(checkpoint_path)
    done = checkpoint.compact()
    wanted = list(dict.fromkeys(int(i) for i in wanted))
    todo = plan(wanted, done, limit=limit, retry_failed=retry_failed)
    summary = FetchSummary(kind=kind, wanted=len(wanted))
    if todo:
        async with TmdbFetcher(options, credentials, transport=transport) as fetcher:
            with checkpoint:
                summary = await fetcher.fetch(kind, todo, checkpoint, progress=progress, on_record=on_record)
        summary.wanted = len(wanted)
    after = Checkpoint(checkpoint_path).compact() if todo else done
    planned = set(todo)
    summary.already_done = sum(1 for i in wanted if i in done and i not in planned)
    summary.remaining = sum(1 for i in wanted if i not in after)
    summary.failed_total = sum(1 for i in wanted if after.get(i) == FAILED)
    return summary


def fetch_sync(
    settings: Settings,
    kind: Kind,
    wanted: Sequence[int],
    *,
    limit: int | None = None,
    retry_failed: bool = False,
    concurrency: int | None = None,
    rate_limit: float | None = None,
    progress: bool = True,
) -> FetchSummary:
    """`run_fetch` with the settings' credentials, options and checkpoint path (blocking)."""
    credentials = Credentials.from_settings(settings)
    options = FetchOptions.from_settings(settings, concurrency=concurrency, rate_limit=rate_limit)
    path = settings.tmdb_checkpoint_path if kind == "movie" else settings.tmdb_collections_checkpoint_path
    return asyncio.run(run_fetch(kind, wanted, path, options, credentials, limit=limit,
                                 retry_failed=retry_failed, progress=progress))


def merge_into_checkpoint(path: Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Append imported records for ids the checkpoint has no usable answer for; returns how many.

    Failed records are never imported; within `records` a later record of an id wins.
    """
    checkpoint = Checkpoint(path)
    done = checkpoint.compact()
    added = 0
    with checkpoint:
        for record in records:
            if record["status"] != FAILED and done.get(record["tmdb_id"], FAILED) == FAILED:
                checkpoint.append(record)
                added += 1
    if added:
        checkpoint.compact()
    return added


def merge_ko_records(path: Path, records: Iterable[Mapping[str, Any]]) -> int:
    """`merge_into_checkpoint` for the Korean (ko-KR) records only: the checkpoint holds nothing else."""
    return merge_into_checkpoint(path, (r for r in records if r.get("language", "ko-KR") == "ko-KR"))


def checkpoint_payloads(path: Path) -> Iterator[dict[str, Any]]:
    """The TMDB payloads of the ok records of a checkpoint (none when it does not exist), streamed."""
    return iter_ok_payloads(Checkpoint(path).records())


def apply_checkpoints(settings: Settings, catalog: Catalog) -> ApplyResult:
    """Write every fetched movie and collection record into the catalog (idempotent)."""
    movies = pd.read_parquet(settings.movies_path, columns=["movieId", "title", "year"]) \
        if settings.movies_path.exists() else None
    return apply_records(
        catalog, checkpoint_payloads(settings.tmdb_checkpoint_path), language="ko",
        collections=checkpoint_payloads(settings.tmdb_collections_checkpoint_path), movies=movies,
    )


def collection_ids(settings: Settings, catalog: Catalog) -> list[int]:
    """Real series in the catalog plus every collection named by a fetched movie record."""
    ids = {s for s in catalog.series_ids(inferred=False) if s > 0}
    for payload in checkpoint_payloads(settings.tmdb_checkpoint_path):
        collection = payload.get("belongs_to_collection")
        collection_id = collection.get("id") if isinstance(collection, Mapping) else None
        if isinstance(collection_id, int) and collection_id > 0:
            ids.add(collection_id)
    return sorted(ids)
