"""Rating counts per movie saved next to a model (the evaluation build's pre-cutoff popularity), as JSON."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

FILE_NAME = "popularity.json"
RECENT_FILE_NAME = "recent_popularity.json"  # the last D days before the cutoff (recent-popular)


def save_popularity(
    directory: Path, counts: Mapping[int, int], *, cutoff_timestamp: int, name: str = FILE_NAME
) -> None:
    """Write movieId -> count, and the timestamp the counted ratings are strictly before, atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "cutoff_timestamp": int(cutoff_timestamp),
        "counts": {str(int(m)): int(c) for m, c in sorted(counts.items())},
    }
    tmp = directory / f"{name}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(payload))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, directory / name)


def load_popularity(directory: Path, name: str = FILE_NAME) -> dict[int, int]:
    """The counts saved by `save_popularity`; FileNotFoundError when none were saved."""
    payload = json.loads((directory / name).read_text(encoding="utf-8"))
    return {int(m): int(c) for m, c in payload["counts"].items()}


def popularity_exists(directory: Path, name: str = FILE_NAME) -> bool:
    return (directory / name).is_file()
