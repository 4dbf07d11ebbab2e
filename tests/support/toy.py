"""A toy learned source, declared the way a real one is: a model (store type + trainer) and a source.

"Toy picks" ranks the movies most often rated 4 or more before the cutoff; it exists to prove that one
registry entry is all the product needs to train, serve, evaluate, tune and show a new source.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.recommender.registry import ModelSpec, SourceInputs, SourceSpec

FILE = "toy.npz"


class ToyModel:
    """Movie ids best first, by how many ratings of 4 or more they had."""

    def __init__(self, ranked: np.ndarray) -> None:
        self.ranked = ranked

    @property
    def info(self) -> dict[str, int]:
        return {"movies": len(self.ranked)}

    def similar(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        top = self.ranked[: k + 1].tolist()
        return [[(m, 1.0 / (r + 1)) for r, m in enumerate(m for m in top if m != q)][:k] for q in movie_ids]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / FILE, ranked=self.ranked)

    @classmethod
    def load(cls, directory: Path) -> ToyModel:
        with np.load(directory / FILE, allow_pickle=False) as data:
            return cls(data["ranked"])

    @staticmethod
    def exists(directory: Path) -> bool:
        return (directory / FILE).is_file()


def train(ratings: pd.DataFrame, params: Any, *, cutoff: int, progress: bool) -> ToyModel:
    liked = ratings.loc[ratings["rating"] >= 4, "movieId"].value_counts()
    ranked = sorted(liked.items(), key=lambda mc: (-mc[1], mc[0]))
    return ToyModel(np.asarray([m for m, _ in ranked], dtype=np.int64))


class ToySource:
    name = "toy"

    def __init__(self, model: ToyModel) -> None:
        self._model = model

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        return self._model.similar(movie_ids, k)


def _make(inputs: SourceInputs) -> ToySource | None:
    model = inputs.models.get("toy")
    return ToySource(model) if model is not None else None


MODEL = ModelSpec("toy", ToyModel, lambda settings: None, "tests.support.toy:train")
SOURCE = SourceSpec("toy", "Toy picks", 60, _make, part="toy", model="toy", degradable=True)
