"""One fetch run over a checkpoint (plan, fetch, compact), imports into it, and checkpoints into the catalog."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from pipelines.tmdb.apply import ApplyResult, apply_records
from pipelines.tmdb.checkpoint import Checkpoint
from pipelines.tmdb.credentials import Credentials
from pipelines.tmdb.fetcher import FetchOptions, FetchSummary, Kind, TmdbFetcher
from pipelines.tmdb.mapping import FAILED, iter_ok_payloads
from services.settings import Settings
from services.stores.catalog import Catalog


def plan(
    wanted: Iterable[int],
    done: Mapping[int, str],
    *,
    limit: int | None = None,
    retry_failed: bool = False,
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
    return asyncio.run(
        run_fetch(kind, wanted, path, options, credentials, limit=limit, retry_failed=retry_failed, progress=progress)
    )


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


def movielens_titles(settings: Settings) -> pd.DataFrame | None:
    """movieId/title/year of the ingested MovieLens movies (for re-inferring series), None before ingest."""
    if not settings.movies_path.exists():
        return None
    return pd.read_parquet(settings.movies_path, columns=["movieId", "title", "year"])


def apply_checkpoints(settings: Settings, catalog: Catalog) -> ApplyResult:
    """Write every fetched movie and collection record into the catalog (idempotent)."""
    return apply_records(
        catalog,
        checkpoint_payloads(settings.tmdb_checkpoint_path),
        language="ko",
        collections=checkpoint_payloads(settings.tmdb_collections_checkpoint_path),
        movies=movielens_titles(settings),
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
