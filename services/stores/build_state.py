"""What each build step was last built from (build_state.json): re-runs skip unchanged work, readers check freshness."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from services.stores.atomic import write_text_atomic


def fingerprint(*parts: Any) -> str:
    """A short stable digest of JSON-serialisable parts (a file by its name, size and mtime: a data dir that is
    moved or copied with its times keeps its fingerprints)."""
    normalised = [
        {"file": p.name, "size": p.stat().st_size, "mtime": p.stat().st_mtime_ns}
        if isinstance(p, Path) and p.exists()
        else p
        for p in parts
    ]
    payload = json.dumps(normalised, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()[:16]


FILES = "files"  # artifact key -> {file relative to the generation: {"size", "blake2b"}} (stores/checksums.py)


class BuildState:
    """A JSON file in the data dir: step name -> fingerprint of its inputs when it last succeeded, and under
    ``files`` the checksums of the artifacts the steps wrote."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / "build_state.json"

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self._path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def digest(self, step: str) -> str | None:
        """The fingerprint `step` last succeeded with, None when it never did."""
        found = self._read().get(step)
        return found if isinstance(found, str) else None

    def is_fresh(self, step: str, digest: str) -> bool:
        return self._read().get(step) == digest

    def mark(self, step: str, digest: str) -> None:
        state = self._read()
        state[step] = digest
        self._write(state)

    def noted(self, key: str) -> dict[str, Any]:
        """What `note` recorded under `key` ({} when nothing was)."""
        found = self._read().get(key)
        return found if isinstance(found, dict) else {}

    def note(self, key: str, value: dict[str, Any]) -> None:
        """Record a small JSON object under `key` (written only when it changed)."""
        state = self._read()
        if state.get(key) != value:
            state[key] = value
            self._write(state)

    def files(self, key: str) -> dict[str, dict[str, Any]]:
        """The recorded checksums of artifact `key`'s files ({} when none were recorded)."""
        found = self._read().get(FILES, {}).get(key, {})
        return found if isinstance(found, dict) else {}

    def artifacts(self) -> list[str]:
        """Every artifact key with recorded checksums."""
        return sorted(self._read().get(FILES, {}))

    def record_files(self, key: str, entries: dict[str, dict[str, Any]]) -> None:
        """Replace artifact `key`'s recorded checksums with `entries`."""
        state = self._read()
        state.setdefault(FILES, {})[key] = entries
        self._write(state)

    def _write(self, state: dict[str, Any]) -> None:
        write_text_atomic(self._path, json.dumps(state, indent=2))
