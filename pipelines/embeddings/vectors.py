"""Embed every catalogue movie's content text and load the vectors into the Qdrant collection."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.embeddings.cached import embed_cached
from pipelines.embeddings.texts import content_text
from services.embeddings.backends import EmbeddingBackend, cache_key
from services.stores.build_state import BuildState
from services.stores.catalog import Catalog
from services.stores.embedding_cache import EmbeddingCache, text_hash
from services.stores.vectors import CollectionInfo, VectorStore, VectorStoreError, VectorStoreLocked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VectorBuildResult:
    points: int
    newly_embedded: int
    upserted: bool


def build_vectors(
    catalog: Catalog,
    store: VectorStore,
    backend: EmbeddingBackend,
    cache: EmbeddingCache,
    state: BuildState,
    *,
    state_key: str = "vectors",
    recreate: bool = False,
    batch_size: int = 64,
    progress: bool = True,
    text: str = "overview",
) -> VectorBuildResult:
    """Embed (through the cache) and upsert; skips the upsert when nothing changed since the last build.

    `text` is the content text variant (`settings.content.text`): a changed variant changes the build's
    fingerprint, so the collection is rebuilt (texts embedded before come from the cache)."""
    rows = list(catalog.content_rows())
    texts = [content_text(r, text) for r in rows]
    ids = [int(r["movie_id"]) for r in rows]
    payloads = _payloads(rows)
    digest = vectors_digest(backend, ids, texts, payloads, text)
    info, broken = (None, False) if recreate else _usable_info(store)
    recreate = recreate or broken
    if (
        not recreate
        and info is not None
        and info.points == len(ids)
        and info.model == backend.model
        and state.is_fresh(state_key, digest)
    ):
        return VectorBuildResult(points=info.points, newly_embedded=0, upserted=False)
    if not recreate and info is not None and (info.dim != backend.dim or info.model != backend.model):
        # another model's collection: refuse (VectorStoreError naming both and --recreate) before a
        # single text is embedded, so a mistaken model switch costs no requests and mixes nothing
        store.ensure(backend.dim, backend.model)

    vectors, fresh = embed_cached(backend, cache, texts, batch_size=batch_size, progress=progress)
    stale = info is not None and bool(set(store.ids().tolist()) - set(ids))
    if recreate or stale:
        store.recreate(backend.dim, backend.model)
    else:
        store.ensure(backend.dim, backend.model)
    store.upsert(ids, np.asarray(vectors, dtype=np.float32), payloads)
    store.finalize()
    state.mark(state_key, digest)
    state.note(f"{state_key}:content", {"text": text})  # what `status` compares with the (tuned) settings
    return VectorBuildResult(points=len(ids), newly_embedded=fresh, upserted=True)


def _payloads(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "series_id": r["series_id"],
            "genres": [g for g in (r["genres"] or "").split("|") if g],
            "year": r["release_date"].year if r["release_date"] else None,
        }
        for r in rows
    ]


def vectors_digest(
    backend: EmbeddingBackend,
    ids: list[int],
    texts: list[str],
    payloads: list[dict[str, Any]],
    text: str = "overview",
) -> str:
    """The vector build's fingerprint: model, movies, texts, payloads and the text variant (the default
    variant's digest is the one builds had before the variant was a setting, so they stay fresh)."""
    key: tuple[Any, ...] = (cache_key(backend), ids, [text_hash(t) for t in texts], payloads)
    if text != "overview":
        key = (*key, text)
    return hashlib.sha256(repr(key).encode()).hexdigest()[:16]


def _usable_info(store: VectorStore) -> tuple[CollectionInfo | None, bool]:
    """The collection's info, and whether it must be rebuilt because it is unreadable (e.g. a build was
    killed while creating it)."""
    try:
        info = store.info()
    except VectorStoreLocked:
        raise
    except VectorStoreError as exc:
        log.warning("rebuilding the collection: %s", exc)
        return None, True
    return info, False
