"""What an embedding run would send and cost, computed without calling any embedding API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipelines.embeddings.cached import batch_ranges
from services.embeddings.backends import EmbeddingBackend
from services.stores.embedding_cache import EmbeddingCache, text_hash


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
    from services.embeddings.openai_backend import estimate_tokens as _estimate_heuristic

    unique = dict(zip((text_hash(t) for t in texts), texts))
    dim = getattr(backend, "known_dim", None) if hasattr(backend, "known_dim") else backend.dim
    hits = (
        cache.get_many(backend.name, getattr(backend, "cache_model", backend.model), dim, list(unique)) if dim else {}
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
        requests=len(batch_ranges(backend, todo, batch_size)),
        estimated_tokens=sum(estimate(t) for t in todo),
        max_tokens=sum(bound(t) for t in todo),
        usd_per_million_tokens=float(getattr(backend, "usd_per_million_tokens", 0.0)),
    )
