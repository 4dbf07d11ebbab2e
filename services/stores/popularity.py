"""Rating counts per movie (popularity, recent popularity) as a model of the trained set, saved as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.stores.array_files import IdIndex
from services.stores.atomic import write_text_atomic
from services.stores.errors import ArtifactError, reason, retrain_command

FILE_NAME = "popularity.json"


@dataclass(frozen=True)
class RecentParams:
    """Recent popularity counts the ratings of the last `days` days before the cutoff."""

    days: float


class CountsView(Mapping[int, int]):
    """movieId -> count over two arrays (ascending ids, their counts): no Python object per movie."""

    def __init__(self, ids: np.ndarray, values: np.ndarray) -> None:
        self.ids, self.values_array = ids, values
        self._index = IdIndex(ids)

    def __getitem__(self, movie_id: int) -> int:
        row = self._index.get(movie_id)
        if row is None:
            raise KeyError(movie_id)
        return int(self.values_array[row])

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids.tolist())

    def __len__(self) -> int:
        return len(self.ids)

    def values(self) -> list[int]:  # type: ignore[override]
        return self.values_array.tolist()

    def items(self) -> list[tuple[int, int]]:  # type: ignore[override]
        return list(zip(self.ids.tolist(), self.values_array.tolist()))


class Counts:
    """movieId -> how many ratings it had strictly before `cutoff` (within the counted period)."""

    def __init__(self, counts: Mapping[int, int], cutoff: int) -> None:
        ids = np.fromiter((int(m) for m in counts), dtype=np.int64, count=len(counts))
        values = np.fromiter((int(c) for c in counts.values()), dtype=np.int64, count=len(counts))
        order = np.argsort(ids, kind="stable")
        self.counts = CountsView(ids[order], values[order])
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
            return cls(payload["counts"], int(payload["cutoff_timestamp"]))
        except Exception as exc:  # missing, bad JSON or shape
            raise ArtifactError(
                f"{path} is unreadable ({type(exc).__name__}: {reason(exc)}): run `{retrain_command(directory)}`"
            ) from exc

    @staticmethod
    def exists(directory: Path) -> bool:
        return (directory / FILE_NAME).is_file()
