"""What every embedding backend shares: the interface, its error and L2 normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class EmbeddingError(RuntimeError):
    """An embedding backend is misconfigured or its requests failed (after their retries)."""


class EmbeddingBackend(Protocol):
    """Turns texts into L2-normalised float32 vectors.

    Optional members, used when present: ``cache_model`` (the model part of the cache key, when more
    than the model id shapes the vectors), ``known_dim`` (the size if known without a request),
    ``estimate_tokens(text)``, ``plan_batches(texts, max_inputs)`` (request-sized ranges) and
    ``usd_per_million_tokens``.
    """

    name: str  # backend id, part of the cache key ("local", "openai")
    model: str  # model id, part of the cache key and stored with the collection

    @property
    def dim(self) -> int:
        """Size of the vectors (read-only: a backend may work it out on first use)."""
        ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


def normalise(matrix: np.ndarray) -> np.ndarray:
    """`matrix` with each row scaled to unit length (all-zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms
