"""Rating counts per movie saved next to a model (the evaluation build's pre-cutoff popularity), as JSON."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

FILE_NAME = "popularity.json"


def save_popularity(directory: Path, counts: Mapping[int, int], *, cutoff_timestamp: int) -> None:
    """Write movieId -> count, and the timestamp the counted ratings are strictly before, atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "cutoff_timestamp": int(cutoff_timestamp),
        "counts": {str(int(m)): int(c) for m, c in sorted(counts.items())},
    }
    tmp = directory / f"{FILE_NAME}.tmp"
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(tmp, directory / FILE_NAME)


def load_popularity(directory: Path) -> dict[int, int]:
    """The counts saved by `save_popularity`; FileNotFoundError when none were saved."""
    payload = json.loads((directory / FILE_NAME).read_text(encoding="utf-8"))
    return {int(m): int(c) for m, c in payload["counts"].items()}


def popularity_exists(directory: Path) -> bool:
    return (directory / FILE_NAME).is_file()
