"""On-disk embedding cache keyed by (backend, model, dimensions, text hash), shared by all backends."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from services.stores.errors import ArtifactError


def text_hash(text: str) -> str:
    """Stable SHA-256 hex digest of a text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """A SQLite key-value file of float32 vectors; safe to reuse across runs and backends."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(path)
        with self._readable():
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS embedding ("
                " backend TEXT NOT NULL, model TEXT NOT NULL, dimensions INTEGER NOT NULL,"
                " text_sha256 TEXT NOT NULL, vector BLOB NOT NULL,"
                " PRIMARY KEY (backend, model, dimensions, text_sha256))"
            )
            self._conn.commit()

    @contextmanager
    def _readable(self) -> Iterator[None]:
        """A damaged cache file becomes an ArtifactError naming it and the fix."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise ArtifactError(
                f"embedding cache {self.path} is unreadable ({exc}): move it aside and run "
                "`nextwatch embed` (texts are embedded again)"
            ) from exc

    def get_many(self, backend: str, model: str, dimensions: int, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors for the hashes that are present."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        with self._readable():
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT text_sha256, vector FROM embedding WHERE backend=? AND model=? AND dimensions=?"
                    f" AND text_sha256 IN ({marks})",
                    (backend, model, dimensions, *chunk),
                )
                for digest, blob in rows:
                    found[digest] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, backend: str, model: str, dimensions: int, items: dict[str, np.ndarray]) -> None:
        """Store vectors by text hash (one transaction)."""
        with self._readable(), self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO embedding VALUES (?, ?, ?, ?, ?)",
                [
                    (backend, model, dimensions, digest, np.asarray(vec, dtype=np.float32).tobytes())
                    for digest, vec in items.items()
                ],
            )

    def count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM embedding").fetchone()[0])

    def close(self) -> None:
        self._conn.close()
