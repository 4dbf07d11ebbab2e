"""The JSON Lines checkpoint of TMDB records: appended line by line, compacted to one line per id.

One object per response as it arrives (``tmdb_id``, ``status`` = ok | not_found | failed, ``fetched_at``,
``language`` and ``data`` or ``error``), flushed line by line.  The last line of an id wins; compaction
rewrites the file atomically with one line per id, dropping a last line cut short by a crash (no newline).
Any other unreadable line means the file was damaged: reading raises `CheckpointError` rather than
silently dropping records, and `Checkpoint.repair` (``nextwatch tmdb repair``) sets such lines aside.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pipelines.tmdb.errors import CheckpointError
from pipelines.tmdb.mapping import checkpoint_record


class Checkpoint:
    """JSON Lines of fetched records, one per id after compaction; appends are flushed line by line.

    Reading never holds the payloads of the whole file in memory: an index pass keeps each id's last
    line number and status, and `records()` streams the payloads in a second pass.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None

    def _index(self, strict: bool = True) -> tuple[dict[int, tuple[int, str]], bool]:
        """tmdb_id -> (number of its last usable line, status); and whether the file is compact."""
        last: dict[int, tuple[int, str]] = {}
        clean = True
        for number, record in self._lines(strict):
            if record is None:
                clean = False  # cut short by a crash (or blank): dropped, so the id is fetched again
                continue
            if record["tmdb_id"] in last:
                clean = False
                del last[record["tmdb_id"]]  # keep ids in order of their last line
            last[record["tmdb_id"]] = (number, record["status"])
        return last, clean

    def _lines(self, strict: bool = True) -> Iterator[tuple[int, dict[str, Any] | None]]:
        """(line number, record); None for a last line without its newline, a blank line or (not strict)
        an unreadable one.  Strict, an unreadable complete line raises `CheckpointError`."""
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:  # bytes: a line that is not UTF-8 is unreadable, not mangled
            for number, line in enumerate(handle):
                record = None
                if line.endswith(b"\n") and line.strip():
                    record = _parse(line)
                    if record is None and strict:
                        raise CheckpointError(
                            f"the TMDB checkpoint {self.path} is damaged at line {number + 1} (not a record): "
                            "run `nextwatch tmdb repair` to set the unreadable lines aside (their ids are "
                            "fetched again)"
                        )
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

    def compact(self, strict: bool = True) -> dict[int, str]:
        """Rewrite the file (atomically) with one line per id when it has duplicates or dropped lines."""
        last, clean = self._index(strict)
        if not clean:
            wanted = {number for number, _ in last.values()}
            tmp = self.path.with_name(self.path.name + ".tmp")
            with tmp.open("w", encoding="utf-8") as out:
                for number, record in self._lines(strict):
                    if record is not None and number in wanted:
                        out.write(_line(record))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        return {tmdb_id: status for tmdb_id, (_, status) in last.items()}

    def repair(self) -> int:
        """Append the unreadable complete lines to ``<name>.rejected``, then compact; returns how many."""
        if not self.path.exists():
            return 0
        rejected = 0
        with self.path.open("rb") as handle, self.path.with_name(self.path.name + ".rejected").open("ab") as aside:
            for line in handle:
                if line.endswith(b"\n") and line.strip() and _parse(line) is None:
                    aside.write(line)
                    rejected += 1
        self.compact(strict=False)
        return rejected

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


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        return checkpoint_record(json.loads(line))
    except ValueError:  # not JSON, not UTF-8
        return None


def _line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
