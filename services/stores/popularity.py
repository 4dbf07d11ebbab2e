"""Rating counts per movie saved next to a model (the evaluation build's pre-cutoff popularity), as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from services.stores.atomic import write_text_atomic
from services.stores.errors import ArtifactError, reason

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
    write_text_atomic(directory / name, json.dumps(payload))


def load_popularity(directory: Path, name: str = FILE_NAME) -> dict[int, int]:
    """The counts saved by `save_popularity`; FileNotFoundError when none were saved, ArtifactError when
    they are unreadable."""
    path = directory / name
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        return {int(m): int(c) for m, c in payload["counts"].items()}
    except FileNotFoundError:
        raise
    except Exception as exc:  # bad JSON or shape
        raise ArtifactError(
            f"{path} is unreadable ({type(exc).__name__}: {reason(exc)}): run `nextwatch evaluate`"
        ) from exc


def popularity_exists(directory: Path, name: str = FILE_NAME) -> bool:
    return (directory / name).is_file()
