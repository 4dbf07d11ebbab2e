"""The learned order-aware next-item model (SASRec class): artifacts (.npy arrays, memory-mapped when loaded, +
json; no pickle) and numpy inference.

`pipelines.sequence.train` trains it with PyTorch; serving needs only numpy, so the API never imports torch.

The network (pre-LayerNorm transformer decoder over a viewer's last `max_len` movies, oldest first):

    x_p   = E[item_p] * sqrt(d) + P[p]              p = position in a left-padded window of max_len
    h     = x + Attn(LN1(x))                       causal; padded positions are never attended to
    x     = h + W2 relu(W1 LN2(h) + b1) + b2       per block
    u     = LN(x_last)                             the viewer after their last movie
    score = u . E[movie]                           for every movie of the catalogue (tied embeddings)

Padding is on the left and positions count from the left of the window, so the last movie always sits at
position max_len - 1 and a history's scores do not depend on how much padding a batch added.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from itertools import accumulate
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from services.stores.array_files import IdIndex, read_arrays, write_arrays
from services.stores.errors import ArtifactError, reason
from services.stores.ranking import SCORE_BLOCK, best_k

NAME = "order_model"  # order_model.json and order_model.<array>.npy
# every weight end to end in weight_names order (the json keeps their shapes), and the item embedding
# transposed for scoring, so a loaded model maps its inference-ready arrays instead of copying them
ARRAYS = ("item_ids", "weights", "items_t")
LOSSES = ("ce", "sampled_ce", "gbce")
LN_EPS = 1e-6
ITEM_EMBEDDING = "item_embedding"  # (items + 1, d); row 0 is padding
POSITION_EMBEDDING = "position_embedding"  # (max_len, d)
BLOCK_WEIGHTS = (
    "ln1.weight", "ln1.bias", "q.weight", "q.bias", "k.weight", "k.bias", "v.weight", "v.bias",
    "out.weight", "out.bias", "ln2.weight", "ln2.bias", "ff1.weight", "ff1.bias", "ff2.weight", "ff2.bias",
)  # fmt: skip
FINAL_WEIGHTS = ("final_ln.weight", "final_ln.bias")


@dataclass(frozen=True)
class OrderParams:
    """How an order-aware model is built and trained (no torch needed to read it)."""

    dims: int = 64  # d: embedding and hidden size
    blocks: int = 2  # transformer blocks
    heads: int = 1  # attention heads (d must divide by it)
    max_len: int = 200  # the last max_len movies of a history are read
    dropout: float = 0.2
    epochs: int = 200  # at most; early stopping usually ends sooner
    batch_size: int = 32  # training windows per step (small batches: more steps per epoch)
    lr: float = 7e-3  # Adam (higher rates reached a given accuracy in fewer epochs on ml-1m-half)
    weight_decay: float = 0.0
    seed: int = 42
    # "ce": softmax cross-entropy over the whole catalogue (SASRec+CE; best while the catalogue is small);
    # "sampled_ce": softmax over the target and `negatives` uniform negatives shared by a batch;
    # "gbce": gSASRec's generalised BCE with those negatives and calibration `gbce_t` (large catalogues)
    loss: str = "ce"
    negatives: int = 256
    gbce_t: float = 0.75
    # training windows per user: "last" = the last max_len + 1 movies; "all" = the whole history cut into
    # consecutive windows from the end (more data per epoch for long histories)
    windows: str = "all"
    max_windows: int | None = None  # an epoch trains on at most this many windows, drawn afresh (None: all)
    min_rating: float | None = None  # only ratings at or above this count; None: every rating
    # early stopping: the last movie of up to `validation_users` users (drawn with the seed) is held out of
    # training; after each epoch NDCG@10 on them (full ranking, seen excluded) is measured, training stops
    # after `patience` epochs without a gain, and the best epoch's weights are kept. 0: no hold-out.
    validation_users: int = 1000
    patience: int = 5
    # the learning rate halves once `lr_patience` + 1 epochs in a row brought no gain (torch's ReduceLROnPlateau
    # on that NDCG@10); None: a constant rate
    lr_patience: int | None = 1
    max_seconds: float | None = None  # training stops at the first step past this much CPU time (None: no budget)

    def __post_init__(self) -> None:
        if self.dims < 1 or self.blocks < 1 or self.heads < 1 or self.dims % self.heads:
            raise ValueError(f"dims ({self.dims}) must be a positive multiple of heads ({self.heads}); blocks >= 1")
        if self.max_len < 1 or self.epochs < 1 or self.batch_size < 1 or self.negatives < 1:
            raise ValueError("max_len, epochs, batch_size and negatives must be at least 1")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.windows not in ("last", "all"):
            raise ValueError(f"windows must be 'last' or 'all', got {self.windows!r}")
        if not 0 <= self.gbce_t <= 1:
            raise ValueError(f"gbce_t must be in [0, 1], got {self.gbce_t}")
        if self.max_windows is not None and self.max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, got {self.max_windows}")
        if self.validation_users < 0 or self.patience < 1:
            raise ValueError("validation_users must not be negative and patience must be at least 1")
        if self.lr_patience is not None and self.lr_patience < 0:
            raise ValueError(f"lr_patience must not be negative, got {self.lr_patience}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> OrderParams:
        """Params from a saved dict (unknown keys, e.g. from a newer version, are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def weight_names(blocks: int) -> list[str]:
    """The names of every weight array of a model with `blocks` blocks, in a fixed order."""
    per_block = [f"blocks.{b}.{name}" for b in range(blocks) for name in BLOCK_WEIGHTS]
    return [ITEM_EMBEDDING, POSITION_EMBEDDING, *per_block, *FINAL_WEIGHTS]


class _Workspace(threading.local):
    """Scratch arrays of the forward pass, one flat float32 buffer per thread, reused from pass to pass: passes
    one after another that allocate their intermediates afresh (evaluation's batches; a loop of single 200-movie
    passes) spend much of their time faulting in the fresh pages the C heap gave back in between (BENCHMARKS.md,
    session 12). A buffer beyond KEEP_FLOATS is not kept: a large batch's memory goes back after it."""

    KEEP_FLOATS = 1 << 20  # 4 MB: a single history of max_len 200 with d 64 needs about 0.2 M

    def __init__(self) -> None:
        self.flat = np.empty(0, dtype=np.float32)

    def take(self, *shapes: tuple[int, ...]) -> list[np.ndarray]:
        """Uninitialised float32 arrays of these shapes, views of this thread's buffer (valid until its next
        `take`)."""
        ends = list(accumulate(math.prod(shape) for shape in shapes))
        flat = self.flat
        if flat.size < ends[-1]:
            flat = np.empty(ends[-1], dtype=np.float32)
            if flat.size <= self.KEEP_FLOATS:
                self.flat = flat
        return [flat[start:end].reshape(shape) for shape, start, end in zip(shapes, [0, *ends], ends)]


_WORKSPACE = _Workspace()


class _Block(NamedTuple):
    """One block's weights, laid out for numpy inference: linear weights transposed (y = x @ w_t + b), each
    layer norm's scale and shift folded into the projection after it, the attention's 1/sqrt(d / heads) into
    the q columns."""

    qkv_t: np.ndarray  # (d, 3d): q, k and v projections side by side, after LN1's scale
    qkv_b: np.ndarray  # with LN1's shift projected
    out_t: np.ndarray
    out_b: np.ndarray
    ff1_t: np.ndarray  # after LN2's scale
    ff1_b: np.ndarray  # with LN2's shift projected
    ff2_t: np.ndarray
    ff2_b: np.ndarray


class OrderModel:
    """A trained order-aware model: the movieId of each item row and the network's weights (float32).

    Linear weights are stored as PyTorch keeps them, (out, in): y = x @ W.T + b.
    """

    def __init__(
        self,
        item_ids: np.ndarray,
        weights: dict[str, np.ndarray],
        params: OrderParams,
        info: dict[str, Any] | None = None,
        items_t: np.ndarray | None = None,
    ) -> None:
        """`items_t`: the item embedding without its padding row, transposed and contiguous (as saved); made
        from the weights when not given."""
        self.item_ids = np.asarray(item_ids, dtype=np.int64)
        self.params = params
        self.info = info or {}
        missing = [name for name in weight_names(params.blocks) if name not in weights]
        if missing:
            raise ValueError(f"order model weights missing: {', '.join(missing[:5])}")
        self.weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        items, d = self.weights[ITEM_EMBEDDING].shape
        if items != len(self.item_ids) + 1 or d != params.dims:
            raise ValueError(f"item embedding is {items} x {d}; expected {len(self.item_ids) + 1} x {params.dims}")
        if self.weights[POSITION_EMBEDDING].shape != (params.max_len, d):
            raise ValueError("position embedding does not match max_len x dims")
        self._index = IdIndex(self.item_ids)  # a movie's item row is its position + 1 (0 pads)
        self._prepare()
        if items_t is None:
            items_t = np.ascontiguousarray(self.weights[ITEM_EMBEDDING][1:].T)
        if items_t.shape != (d, items - 1) or items_t.dtype != np.float32 or not items_t.flags.c_contiguous:
            raise ValueError(f"items_t is {items_t.shape} {items_t.dtype}; expected ({d}, {items - 1}) float32")
        self._items_t = items_t  # (d, items)

    def _prepare(self) -> None:
        """Inference-ready weights: transposed linear weights, the fused q|k|v projection, layer norms' scales
        and shifts and the attention's scale folded into the projections that follow them, the causal mask."""
        w = self.weights
        d, heads = self.params.dims, self.params.heads
        self._scale = np.float32(math.sqrt(d))
        attention_scale = np.ones(3 * d, dtype=np.float64)
        attention_scale[:d] = 1 / math.sqrt(d // heads)
        self._blocks: list[_Block] = []
        for b in range(self.params.blocks):
            p = f"blocks.{b}."
            qkv_t = np.concatenate([w[p + "q.weight"], w[p + "k.weight"], w[p + "v.weight"]], axis=0).T
            qkv_b = np.concatenate([w[p + "q.bias"], w[p + "k.bias"], w[p + "v.bias"]])
            qkv_t, qkv_b = _after_norm(w[p + "ln1.weight"], w[p + "ln1.bias"], qkv_t, qkv_b, attention_scale)
            ff1_t, ff1_b = _after_norm(w[p + "ln2.weight"], w[p + "ln2.bias"], w[p + "ff1.weight"].T, w[p + "ff1.bias"])
            self._blocks.append(
                _Block(
                    qkv_t=qkv_t,
                    qkv_b=qkv_b,
                    out_t=np.ascontiguousarray(w[p + "out.weight"].T),
                    out_b=w[p + "out.bias"],
                    ff1_t=ff1_t,
                    ff1_b=ff1_b,
                    ff2_t=np.ascontiguousarray(w[p + "ff2.weight"].T),
                    ff2_b=w[p + "ff2.bias"],
                )
            )
        self._final_ln = (w["final_ln.weight"], w["final_ln.bias"])
        # added to the attention scores: -inf where a position may not attend (the later ones), else 0; a window
        # of n positions takes its last n x n
        later = np.triu(np.ones((self.params.max_len, self.params.max_len), dtype=bool), 1)
        self._causal = np.where(later, np.float32(-np.inf), np.float32(0))

    def __contains__(self, movie_id: object) -> bool:
        return movie_id in self._index

    def __len__(self) -> int:
        return len(self.item_ids)

    # ---- inference (numpy) -------------------------------------------------------------

    def encode_ids(self, history: Sequence[int]) -> list[int]:
        """The history's item rows (1-based) in order; movies the model does not know are skipped."""
        rows = self._index.positions(history)
        return (rows[rows >= 0] + 1).tolist()

    def user_vectors(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        """(batch, d): each history's state after its last known movie; zeros for an empty history."""
        return self._user_vectors([self.encode_ids(h) for h in histories])

    def _user_vectors(self, encoded: Sequence[list[int]], window: int | None = None) -> np.ndarray:
        """:meth:`user_vectors` of histories already encoded (item rows), each read over its last `window` rows
        (at most max_len; None: max_len)."""
        last = self.params.max_len if window is None else max(1, min(window, self.params.max_len))
        rows = [r[-last:] for r in encoded]
        out = np.zeros((len(rows), self.params.dims), dtype=np.float32)
        # histories of one length share a batch without padding (a single request is one such batch)
        by_length: dict[int, list[int]] = {}
        for pos, r in enumerate(rows):
            if r:
                by_length.setdefault(len(r), []).append(pos)
        for positions in by_length.values():
            out[positions] = self._forward(np.array([rows[p] for p in positions], dtype=np.int64))
        return out

    def scores(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        """(batch, items) scores over `item_ids` (higher = more likely next); rows of empty histories are 0."""
        return self.user_vectors(histories) @ self._items_t

    def recommend(
        self, histories: Sequence[Sequence[int]], k: int, exclude_seen: bool = True, window: int | None = None
    ) -> list[list[tuple[int, float]]]:
        """Per history, its top k (movieId, score), best first (ties by movieId: at the cut, the smallest ids);
        [] when no movie is known. The network reads each history's last `window` known movies (at most
        max_len; None: max_len); `exclude_seen` leaves out all of it. Scored SCORE_BLOCK histories at a time (a
        block's scores, not the whole batch's, are in memory)."""
        out: list[list[tuple[int, float]]] = [[] for _ in histories]
        encoded = [self.encode_ids(h) for h in histories]
        known = [pos for pos, rows in enumerate(encoded) if rows]
        if not known or k <= 0:
            return out
        top = min(k, len(self.item_ids))
        for start in range(0, len(known), SCORE_BLOCK):
            block = known[start : start + SCORE_BLOCK]
            scores = self._user_vectors([encoded[pos] for pos in block], window) @ self._items_t
            if exclude_seen:
                seen = [encoded[pos] for pos in block]
                lines = np.repeat(np.arange(len(block)), [len(rows) for rows in seen])
                scores[lines, np.concatenate(seen) - 1] = -np.inf
            for pos, best in zip(block, best_k(scores, self.item_ids, top)):
                out[pos] = best
        return out

    def _forward(self, items: np.ndarray) -> np.ndarray:
        """(batch, n) item rows, all real (no padding), n <= max_len -> (batch, d) final states.

        Every intermediate lives in this thread's workspace (`_Workspace`); each step writes into it."""
        batch, n = items.shape
        heads, d = self.params.heads, self.params.dims
        dh = d // heads
        x, normed, qkv, att, ctx, h, ff, reduced = _WORKSPACE.take(
            (batch, n, d),
            (batch, n, d),
            (batch, n, 3 * d),
            (batch, heads, n, n),
            (batch, n, d),
            (batch, n, d),
            (batch, n, self._blocks[0].ff1_t.shape[1]),
            (batch, heads, n, 1),
        )
        np.take(self.weights[ITEM_EMBEDDING], items, axis=0, out=x)
        x *= self._scale
        x += self.weights[POSITION_EMBEDDING][-n:]
        causal = self._causal[-n:, -n:]
        last = len(self._blocks) - 1
        for b, blk in enumerate(self._blocks):
            np.matmul(_normalized(x, normed, reduced[:, 0]), blk.qkv_t, out=qkv)
            qkv += blk.qkv_b  # q already scaled by 1/sqrt(dh)
            if b == last:  # only the last position's output is needed from the last block
                x, normed, att, ctx, h, ff, reduced = (a[..., -1:, :] for a in (x, normed, att, ctx, h, ff, reduced))
                mask, q = causal[-1:], qkv[:, -1:, :d]
            else:
                mask, q = causal, qkv[..., :d]
            m = q.shape[1]
            # (batch, heads, positions, dh) views: heads split off the last axis
            q = q.reshape(batch, m, heads, dh).transpose(0, 2, 1, 3)
            kk = qkv[..., d : 2 * d].reshape(batch, n, heads, dh).transpose(0, 2, 3, 1)
            v = qkv[..., 2 * d :].reshape(batch, n, heads, dh).transpose(0, 2, 1, 3)
            np.matmul(q, kk, out=att)  # (batch, heads, m, n)
            att += mask
            att -= np.maximum.reduce(att, axis=-1, keepdims=True, out=reduced)
            np.exp(att, out=att)
            att /= np.add.reduce(att, axis=-1, keepdims=True, out=reduced)
            np.matmul(att, v, out=ctx.reshape(batch, m, heads, dh).transpose(0, 2, 1, 3))
            np.matmul(ctx, blk.out_t, out=h)
            h += blk.out_b
            h += x
            np.matmul(_normalized(h, normed, reduced[:, 0]), blk.ff1_t, out=ff)
            ff += blk.ff1_b
            np.maximum(ff, 0, out=ff)
            np.matmul(ff, blk.ff2_t, out=x)
            x += blk.ff2_b
            x += h
        return _layer_norm(x[:, -1], *self._final_ln)  # new arrays: nothing returned lives in the workspace

    # ---- persistence -------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write item ids, weights and the transposed item embedding (.npy, no pickle) and params/info with the
        weights' shapes (json, last), each atomically."""
        names = weight_names(self.params.blocks)
        arrays = {
            "item_ids": self.item_ids,
            "weights": np.concatenate([self.weights[name].ravel() for name in names]),
            "items_t": self._items_t,
        }
        shapes = {name: list(self.weights[name].shape) for name in names}
        write_arrays(directory, NAME, arrays, {"params": asdict(self.params), "info": self.info, "shapes": shapes})

    @classmethod
    def load(cls, directory: Path) -> OrderModel:
        """Map a model saved by `save` (its arrays are shared read-only by every process that loads them);
        FileNotFoundError when none was built, ArtifactError when unreadable."""
        try:
            arrays, meta = read_arrays(directory, NAME, ARRAYS)
            params = OrderParams.from_dict(meta["params"])
            weights: dict[str, np.ndarray] = {}
            flat, at = arrays["weights"], 0
            for name in weight_names(params.blocks):
                shape = tuple(meta["shapes"][name])
                size = math.prod(shape)
                weights[name] = flat[at : at + size].reshape(shape)
                at += size
            if at != len(flat):
                raise ValueError(f"the weights hold {len(flat):,} numbers, the shapes {at:,}")
            return cls(arrays["item_ids"], weights, params, meta.get("info"), arrays["items_t"])
        except FileNotFoundError:
            raise
        except Exception as exc:  # cut-short arrays, bad JSON, missing arrays or fields: all mean "retrain"
            raise ArtifactError(
                f"order model in {directory} is unreadable ({type(exc).__name__}: {reason(exc)}): rebuild it"
            ) from exc

    @staticmethod
    def exists(directory: Path) -> bool:
        return (directory / f"{NAME}.json").is_file()


def _normalized(x: np.ndarray, out: np.ndarray | None = None, reduced: np.ndarray | None = None) -> np.ndarray:
    """x over its last axis to mean 0 and variance 1 (a layer norm before its scale and shift), into `out` (x's
    shape) with `reduced` (x's shape but 1 on the last axis) as scratch when given."""
    # float32 sums over the last axis over n, as x.mean(axis=-1) computes them, without its Python wrapper: a
    # forward pass calls this five times
    n = np.float32(x.shape[-1])
    mean = np.add.reduce(x, axis=-1, keepdims=True, out=reduced)
    mean /= n
    centred = np.subtract(x, mean, out=out)
    var = np.add.reduce(np.square(centred), axis=-1, keepdims=True, out=reduced)
    var /= n
    var += np.float32(LN_EPS)
    centred /= np.sqrt(var, out=var)
    return centred


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return _normalized(x) * weight + bias


def _after_norm(
    scale: np.ndarray, shift: np.ndarray, w_t: np.ndarray, b: np.ndarray, columns: np.ndarray | float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """A linear layer (x @ w_t + b) after a layer norm's scale and shift, as one linear layer of the normalised
    x, its output columns multiplied by `columns`; computed in float64, kept as contiguous float32."""
    w64, b64 = w_t.astype(np.float64), b.astype(np.float64)
    fused_t = scale.astype(np.float64)[:, None] * w64 * columns
    fused_b = (shift.astype(np.float64) @ w64 + b64) * columns
    return np.ascontiguousarray(fused_t, dtype=np.float32), fused_b.astype(np.float32)
