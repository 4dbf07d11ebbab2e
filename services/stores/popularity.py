"""Rating counts per movie (popularity, recent popularity) as a model of the trained set, saved as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.stores.atomic import write_text_atomic
from services.stores.errors import ArtifactError, reason, retrain_command

FILE_NAME = "popularity.json"


@dataclass(frozen=True)
class RecentParams:
    """Recent popularity counts the ratings of the last `days` days before the cutoff."""

    days: float


class Counts:
    """movieId -> how many ratings it had strictly before `cutoff` (within the counted period)."""

    def __init__(self, counts: Mapping[int, int], cutoff: int) -> None:
        self.counts = {int(m): int(c) for m, c in counts.items()}
        self.cutoff = int(cutoff)

    @property
    def info(self) -> dict[str, int]:
        return {"movies": len(self.counts), "cutoff_timestamp": self.cutoff}

    def save(self, directory: Path) -> None:
        """Write the counts and their cutoff atomically."""
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"cutoff_timestamp": self.cutoff, "counts": {str(m): c for m, c in sorted(self.counts.items())}}
        write_text_atomic(directory / FILE_NAME, json.dumps(payload))

    @classmethod
    def load(cls, directory: Path) -> Counts:
        """The saved counts; ArtifactError when they are unreadable."""
        path = directory / FILE_NAME
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            return cls({int(m): int(c) for m, c in payload["counts"].items()}, int(payload["cutoff_timestamp"]))
        except Exception as exc:  # missing, bad JSON or shape
            raise ArtifactError(
                f"{path} is unreadable ({type(exc).__name__}: {reason(exc)}): run `{retrain_command(directory)}`"
            ) from exc

    @staticmethod
    def exists(directory: Path) -> bool:
        return (directory / FILE_NAME).is_file()
