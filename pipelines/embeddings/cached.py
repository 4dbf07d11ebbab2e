"""The cached, batched embedding of movie content texts (resumable: every batch is cached at once)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from services.embeddings.backends import EmbeddingBackend, EmbeddingError, cache_key
from services.stores.embedding_cache import EmbeddingCache, text_hash


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
    ranges = batch_ranges(backend, [text for _, text in todo], batch_size)
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


def batch_ranges(backend: EmbeddingBackend, texts: Sequence[str], batch_size: int) -> list[tuple[int, int]]:
    planner = getattr(backend, "plan_batches", None)
    if planner is not None:
        return planner(texts, batch_size)
    return [(start, min(start + batch_size, len(texts))) for start in range(0, len(texts), batch_size)]
