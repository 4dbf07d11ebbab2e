"""In-memory stand-ins for the stores: a hand-made catalogue, an exact vector index and an ALS double."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from services.recommender.standard import FusionConfig, Strategy, build_strategies

IDS = list(range(1, 41))


SERIES = {1: 100, 2: 100, 3: 100, 10: 200, 11: 200}  # movie -> series


class ExactVectors:
    """Brute-force cosine index over random unit vectors (what Qdrant does, exactly)."""

    def __init__(self, ids: Sequence[int], dim: int = 8) -> None:
        rng = np.random.default_rng(0)
        m = rng.normal(size=(len(ids), dim)).astype(np.float32)
        self.ids = np.asarray(ids)
        self.m = m / np.linalg.norm(m, axis=1, keepdims=True)

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        pos = {int(m): i for i, m in enumerate(self.ids)}
        return {int(i): self.m[pos[int(i)]] for i in ids if int(i) in pos}

    def search_batch(self, vectors, k, exclude=None):
        out = []
        for row, ex in zip(vectors, exclude or [[]] * len(vectors)):
            scores = self.m @ row
            order = np.lexsort((self.ids, -scores))
            out.append([(int(self.ids[i]), float(scores[i])) for i in order if self.ids[i] not in ex][:k])
        return out


class FakeALS:
    def similar(self, movie_ids, k):
        out = []
        for m in movie_ids:
            near = [(m + j) % 40 + 1 for j in range(k + 1)]
            out.append([] if m == 40 else [(x, 1.0 - j / 100) for j, x in enumerate(near) if x != m][:k])
        return out


# hybrid as the unit tests know it: series first, then vector neighbours, then collaborative ones
TEST_FUSION = FusionConfig({"series": 4.0, "vector": 2.0, "collaborative": 1.0}, depth=50, rank_constant=10.0)


def standard(**parts: Any) -> dict[str, Strategy]:
    """`build_strategies` with the parts a test leaves out: no sequential model, no recent counts, seed 42,
    and `TEST_FUSION`."""
    defaults: dict[str, Any] = {"sequential": None, "recent_popularity": None, "fusion": TEST_FUSION, "seed": 42}
    return build_strategies(**{**defaults, **parts})
