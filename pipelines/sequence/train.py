"""Train the order-aware next-item model (SASRec class) with PyTorch on CPU; the result is a numpy `OrderModel`.

Each user's ratings, in (timestamp, movieId) order, are one sequence. Training windows of max_len + 1 movies
are cut from the end of each sequence (only the last one with ``windows="last"``); at every position of a
window the network predicts the next movie. The loss is softmax cross-entropy over the whole catalogue
(``loss="ce"``, SASRec+CE) or, for large catalogues, over the target and uniformly sampled negatives shared by
a batch (``"sampled_ce"``) or gSASRec's generalised BCE over them (``"gbce"``).

Training is seeded and deterministic on CPU for a seed and a thread count: shuffling and negatives come from
generators seeded with `OrderParams.seed`, dropout from torch's CPU generator seeded inside `fork_rng` (the
caller's random state is restored afterwards), and ``torch.use_deterministic_algorithms`` is on.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from services.stores.order_model import (
    ITEM_EMBEDDING,
    LN_EPS,
    POSITION_EMBEDDING,
    OrderModel,
    OrderParams,
    weight_names,
)

EVAL_BATCH = 256
BUCKET_BATCHES = 32
CE_CHUNK = 1024  # rows of logits at a time in the full cross-entropy

log = logging.getLogger(__name__)


# ---- the network (services/stores/order_model.py has its numpy twin) ------------------------


class Dropout(nn.Module):
    """Inverted dropout with a Bernoulli mask drawn by ``bernoulli_`` (several times faster than
    ``F.dropout`` on CPU; the same distribution, drawn from torch's seeded CPU generator)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1.0 - self.p
        return x * torch.empty_like(x).bernoulli_(keep).div_(keep)


class Block(nn.Module):
    """Pre-LayerNorm causal self-attention and a position-wise feed-forward layer (d -> d -> d, ReLU)."""

    def __init__(self, dims: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dims, eps=LN_EPS)
        self.q = nn.Linear(dims, dims)
        self.k = nn.Linear(dims, dims)
        self.v = nn.Linear(dims, dims)
        self.out = nn.Linear(dims, dims)
        self.ln2 = nn.LayerNorm(dims, eps=LN_EPS)
        self.ff1 = nn.Linear(dims, dims)
        self.ff2 = nn.Linear(dims, dims)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        batch, n, d = x.shape
        dh = d // self.heads
        y = self.ln1(x)
        q = self.q(y).view(batch, n, self.heads, dh).transpose(1, 2)
        k = self.k(y).view(batch, n, self.heads, dh).transpose(1, 2)
        v = self.v(y).view(batch, n, self.heads, dh).transpose(1, 2)
        # fused softmax(q k^T / sqrt(dh) + mask) v; no dropout on the attention weights (it would cost as much
        # as the rest of the block on CPU)
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=~masked[:, None])
        ctx = ctx.transpose(1, 2).reshape(batch, n, d)
        h = x + self.dropout(self.out(ctx))
        return h + self.dropout(self.ff2(self.dropout(torch.relu(self.ff1(self.ln2(h))))))


class OrderNet(nn.Module):
    """Item and position embeddings, `blocks` blocks, a final LayerNorm; scores are dot products with the
    item embeddings (tied)."""

    def __init__(self, items: int, params: OrderParams) -> None:
        super().__init__()
        d = params.dims
        self.max_len = params.max_len
        self.scale = math.sqrt(d)
        self.item_embedding = nn.Embedding(items + 1, d, padding_idx=0)
        self.position_embedding = nn.Embedding(params.max_len, d)
        self.blocks = nn.ModuleList(Block(d, params.heads, params.dropout) for _ in range(params.blocks))
        self.final_ln = nn.LayerNorm(d, eps=LN_EPS)
        self.dropout = Dropout(params.dropout)
        nn.init.normal_(self.item_embedding.weight, std=1 / math.sqrt(d))
        nn.init.normal_(self.position_embedding.weight, std=1 / math.sqrt(d))
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def hidden(self, items: torch.Tensor) -> torch.Tensor:
        """(batch, n) item rows, left-padded with 0, n <= max_len -> (batch, n, d) states after each position."""
        n = items.shape[1]
        positions = torch.arange(self.max_len - n, self.max_len)
        x = self.dropout(self.item_embedding(items) * self.scale + self.position_embedding(positions))
        causal = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
        # padding is never attended to, except by itself (so that no row of the softmax is empty)
        masked = causal[None] | ((items == 0)[:, None, :] & ~torch.eye(n, dtype=torch.bool)[None])
        for block in self.blocks:
            x = block(x, masked)
        return self.final_ln(x)

    def item_matrix(self) -> torch.Tensor:
        """(items, d): the embeddings of the real items (row i is item row i + 1)."""
        return self.item_embedding.weight[1:]


def to_numpy_weights(net: OrderNet) -> dict[str, np.ndarray]:
    """The network's weights under `services.stores.order_model` names."""
    state = {k: v.detach().cpu().numpy().astype(np.float32, copy=True) for k, v in net.state_dict().items()}
    state[ITEM_EMBEDDING] = state.pop("item_embedding.weight")
    state[POSITION_EMBEDDING] = state.pop("position_embedding.weight")
    return state


def order_net(model: OrderModel) -> OrderNet:
    """A torch network holding a saved model's weights (eval mode), e.g. to check the numpy inference."""
    net = OrderNet(len(model.item_ids), model.params)
    state = {k: torch.from_numpy(v.copy()) for k, v in model.weights.items()}
    state["item_embedding.weight"] = state.pop(ITEM_EMBEDDING)
    state["position_embedding.weight"] = state.pop(POSITION_EMBEDDING)
    net.load_state_dict(state)
    return net.eval()


def torch_scores(model: OrderModel, histories: Sequence[Sequence[int]]) -> np.ndarray:
    """`OrderModel.scores` computed by the torch network (histories left-padded to max_len in one batch)."""
    net = order_net(model)
    rows = np.zeros((len(histories), model.params.max_len), dtype=np.int64)
    for i, history in enumerate(histories):
        known = model.encode_ids(history)[-model.params.max_len :]
        if known:
            rows[i, -len(known) :] = known
    with torch.no_grad():
        users = net.hidden(torch.from_numpy(rows))[:, -1]
        scores = users @ net.item_matrix().T
    scores[torch.from_numpy(~rows.any(axis=1))] = 0.0
    return scores.numpy()


# ---- data ------------------------------------------------------------------------------------


@dataclass
class Sequences:
    """Every user's item rows (1-based) in order, flat, with CSR offsets."""

    item_ids: np.ndarray  # movieId of item row i + 1
    items: np.ndarray  # (ratings,) int64
    indptr: np.ndarray  # (users + 1,)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)


def user_sequences(ratings: pd.DataFrame, min_rating: float | None = None) -> Sequences:
    """Each user's movies in (timestamp, movieId) order as item rows of the sorted distinct movieIds."""
    if min_rating is not None:
        ratings = ratings.loc[ratings["rating"] >= min_rating]
    if ratings.empty:
        raise ValueError("no ratings to train the order model on")
    movie_codes, item_ids = pd.factorize(ratings["movieId"].to_numpy(), sort=True)
    user_codes, _ = pd.factorize(ratings["userId"].to_numpy(), sort=True)
    order = np.lexsort((movie_codes, ratings["timestamp"].to_numpy(np.int64), user_codes))
    users = user_codes[order]
    indptr = np.searchsorted(users, np.arange(users.max() + 2)).astype(np.int64)
    return Sequences(np.asarray(item_ids, np.int64), movie_codes[order].astype(np.int64) + 1, indptr)


def training_windows(items: np.ndarray, indptr: np.ndarray, max_len: int, windows: str) -> np.ndarray:
    """(windows, max_len + 1) left-padded item rows: windows of max_len + 1 movies cut from each sequence's end
    (consecutive windows overlap by one movie, so every movie but a user's first is a target once)."""
    ends, starts = indptr[1:], indptr[:-1]
    lengths = ends - starts
    if windows == "last":
        per_user = (lengths >= 2).astype(np.int64)
    else:
        per_user = np.where(lengths >= 2, -(-(lengths - 1) // max_len), 0)
    user = np.repeat(np.arange(len(lengths)), per_user)
    j = np.arange(len(user)) - np.repeat(np.cumsum(per_user) - per_user, per_user)
    end = ends[user] - j * max_len
    start = np.maximum(starts[user], end - max_len - 1)
    idx = end[:, None] - (max_len + 1) + np.arange(max_len + 1)[None, :]
    out = np.where(idx >= start[:, None], items[np.clip(idx, 0, None)], 0)
    return out.astype(np.int64)


def left_pad(rows: Sequence[np.ndarray], width: int) -> np.ndarray:
    out = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        r = r[-width:]
        if len(r):
            out[i, -len(r) :] = r
    return out


@dataclass
class Validation:
    """Held-out last movies: each user's history (left-padded), target row, and seen rows."""

    histories: np.ndarray  # (users, max_len)
    targets: np.ndarray  # (users,) item rows
    seen_users: np.ndarray  # flat (user position, item row - 1) pairs to exclude
    seen_items: np.ndarray


def split_validation(seqs: Sequences, params: OrderParams) -> tuple[np.ndarray, np.ndarray, Validation | None]:
    """The training (items, indptr) and the validation hold-out: the last movie of up to `validation_users`
    users with at least 3 movies, drawn with the seed."""
    lengths = seqs.lengths
    eligible = np.flatnonzero(lengths >= 3)
    n = min(params.validation_users, len(eligible))
    if n == 0:
        return seqs.items, seqs.indptr, None
    chosen = np.sort(np.random.default_rng(params.seed).choice(eligible, size=n, replace=False))
    keep = np.ones(len(seqs.items), dtype=bool)
    keep[seqs.indptr[chosen + 1] - 1] = False
    items = seqs.items[keep]
    new_lengths = lengths.copy()
    new_lengths[chosen] -= 1
    indptr = np.concatenate([[0], np.cumsum(new_lengths)]).astype(np.int64)
    targets = seqs.items[seqs.indptr[chosen + 1] - 1]
    histories = [items[indptr[u] : indptr[u + 1]] for u in chosen]
    seen_users = np.repeat(np.arange(n), [len(h) for h in histories])
    seen_items = np.concatenate(histories) - 1
    return items, indptr, Validation(left_pad(histories, params.max_len), targets, seen_users, seen_items)


# ---- training --------------------------------------------------------------------------------


def train_order_model(ratings: pd.DataFrame, params: OrderParams, *, progress: bool = True) -> OrderModel:
    """Fit the order-aware model on a userId/movieId/rating/timestamp frame (CPU; deterministic for a seed)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    seqs = user_sequences(ratings, params.min_rating)
    items, indptr, validation = split_validation(seqs, params)
    windows = training_windows(items, indptr, params.max_len, params.windows)
    if len(windows) == 0:
        raise ValueError("no user has two movies: nothing to learn an order from")
    n_items = len(seqs.item_ids)
    deterministic = torch.are_deterministic_algorithms_enabled()
    _deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params.seed)
            net, fitted = _fit(net=OrderNet(n_items, params), windows=windows, validation=validation, params=params,
                               n_items=n_items, cpu_started=cpu_started, progress=progress)  # fmt: skip
    finally:
        _deterministic_algorithms(deterministic)
    if fitted["stopped"] == "max_seconds":
        _warn_budget(params, fitted)
    weights = to_numpy_weights(net)
    assert set(weight_names(params.blocks)) <= set(weights)
    info = {
        "users": int(len(seqs.indptr) - 1),
        "items": n_items,
        "ratings": int(len(seqs.items)),
        "windows": int(len(windows)),
        "target_positions": int(np.count_nonzero(windows[:, :-1])),
        "validation_users": 0 if validation is None else len(validation.targets),
        "max_timestamp": int(ratings["timestamp"].max()) if "timestamp" in ratings else None,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "fit_seconds": round(time.perf_counter() - started, 2),
        **fitted,
    }
    return OrderModel(seqs.item_ids, weights, params, info)


def _warn_budget(params: OrderParams, fitted: dict) -> None:
    """One warning line: the CPU budget, not the data, ended training, so a faster or quieter machine trains
    further and the model (and every figure measured with it) moves between runs; how to get the same one."""
    epochs = max(1, fitted["epochs_run"])
    best = f" (best: epoch {fitted['best_epoch']})" if "best_epoch" in fitted else ""
    log.warning(
        "the learned model's training ended at NEXTWATCH_LEARNED_MAX_SECONDS (%g CPU seconds) in epoch %d%s: "
        "another run may stop elsewhere; for the same model every run (on this machine and thread count), set "
        "NEXTWATCH_LEARNED_EPOCHS=%d and NEXTWATCH_LEARNED_MAX_SECONDS= (empty: no budget)",
        params.max_seconds,
        epochs,
        best,
        epochs,
    )


def _deterministic_algorithms(mode: bool) -> None:
    """``torch.use_deterministic_algorithms(mode)`` without its import of torch._inductor (seconds of startup for a
    compiler this code does not use): the switch itself is one call into torch's C core."""
    switch = getattr(torch._C, "_set_deterministic_algorithms", None)
    if switch is None:  # pragma: no cover - a torch without the private switch
        torch.use_deterministic_algorithms(mode)
    else:
        switch(mode)


def _fit(
    *,
    net: OrderNet,
    windows: np.ndarray,
    validation: Validation | None,
    params: OrderParams,
    n_items: int,
    cpu_started: float,
    progress: bool,
) -> tuple[OrderNet, dict]:
    rng = np.random.default_rng(params.seed)
    negatives = torch.Generator().manual_seed(params.seed + 1)
    optimizer = torch.optim.Adam(net.parameters(), lr=params.lr, betas=(0.9, 0.98), weight_decay=params.weight_decay)
    plateau = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=params.lr_patience)
        if params.lr_patience is not None and validation is not None
        else None
    )
    windows_t = torch.from_numpy(windows)
    lengths = np.count_nonzero(windows[:, :-1], axis=1)
    best: tuple[float, int, dict] | None = None
    history: list[dict] = []
    stopped = "epochs"
    started = time.perf_counter()
    bar = tqdm(range(1, params.epochs + 1), desc="order model", unit="epoch", disable=not progress)
    for epoch in bar:
        net.train()
        total, count = 0.0, 0
        for picked in _batches(rng, lengths, params.batch_size, params.max_windows):
            if params.max_seconds is not None and time.process_time() - cpu_started >= params.max_seconds:
                stopped = "max_seconds"  # mid-epoch; CPU time: as many steps on a busy machine as on a quiet one
                break
            n = int(lengths[picked].max())
            batch = windows_t[torch.from_numpy(picked)][:, -(n + 1) :]
            inputs, targets = batch[:, :-1], batch[:, 1:]
            valid = inputs != 0
            states = net.hidden(inputs)[valid]
            loss = _loss(net, states, targets[valid], params, n_items, negatives)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(picked)
            count += len(picked)
        if count == 0:  # the budget ran out before this epoch's first step
            break
        row: dict = {
            "epoch": epoch,
            "loss": round(total / count, 4),
            "seconds": round(time.perf_counter() - started, 1),
            "cpu_seconds": round(time.process_time() - cpu_started, 1),
            "windows": count,  # fewer than all when the time budget ended the epoch
        }
        if validation is not None:
            row.update(evaluate(net, validation))
            if best is None or row["ndcg@10"] > best[0]:
                best = (row["ndcg@10"], epoch, copy.deepcopy(net.state_dict()))
            if plateau is not None:
                plateau.step(row["ndcg@10"])
                row["lr"] = optimizer.param_groups[0]["lr"]
        history.append(row)
        bar.set_postfix({k: v for k, v in row.items() if k != "epoch"})
        if best is not None and epoch - best[1] >= params.patience:
            stopped = "patience"
            break
        if stopped == "max_seconds":
            break
    bar.close()
    fitted: dict = {"epochs_run": len(history), "stopped": stopped, "history": history}
    if best is not None:
        net.load_state_dict(best[2])
        fitted["best_epoch"] = best[1]
        fitted["validation"] = {k: v for k, v in history[best[1] - 1].items() if k in ("hr@10", "ndcg@10")}
    return net.eval(), fitted


def _batches(
    rng: np.random.Generator, lengths: np.ndarray, batch_size: int, max_windows: int | None = None
) -> list[np.ndarray]:
    """One epoch's batches of window indices in random order (at most `max_windows` windows, drawn afresh);
    windows of similar length share a batch (sorted within random groups of BUCKET_BATCHES batches), so that
    little of a batch is padding."""
    order = rng.permutation(len(lengths))[:max_windows]
    group = batch_size * BUCKET_BATCHES
    for lo in range(0, len(order), group):
        part = order[lo : lo + group]
        order[lo : lo + group] = part[np.argsort(lengths[part], kind="stable")]
    batches = [order[lo : lo + batch_size] for lo in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _loss(
    net: OrderNet,
    states: torch.Tensor,
    targets: torch.Tensor,
    params: OrderParams,
    n_items: int,
    negatives: torch.Generator,
) -> torch.Tensor:
    """Mean loss of the (positions, d) states predicting their (positions,) target item rows."""
    if params.loss == "ce":
        return ChunkedCrossEntropy.apply(states, net.item_matrix(), targets - 1)
    negs = torch.randint(1, n_items + 1, (params.negatives,), generator=negatives)
    weight = net.item_embedding.weight
    positive = (states * weight[targets]).sum(-1)
    negative = states @ weight[negs].T  # (positions, negatives), shared by the batch
    collide = negs[None, :] == targets[:, None]
    if params.loss == "sampled_ce":
        logits = torch.cat([positive[:, None], negative.masked_fill(collide, float("-inf"))], dim=1)
        return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long))
    # gSASRec: generalised BCE, the positive's probability raised to beta (calibrates sampled negatives)
    alpha = params.negatives / max(n_items - 1, 1)
    beta = alpha * (params.gbce_t * (1 - 1 / alpha) + 1 / alpha)
    pos_loss = -beta * F.logsigmoid(positive)
    neg_loss = (-F.logsigmoid(-negative)).masked_fill(collide, 0.0).sum(-1)
    return (pos_loss + neg_loss).mean()


class ChunkedCrossEntropy(torch.autograd.Function):
    """Mean softmax cross-entropy of ``states @ items.T`` against `targets`, computed in chunks of CE_CHUNK rows.

    The same value and gradients as ``F.cross_entropy(states @ items.T, targets)``, but the (rows, items) logits
    never exist whole: each chunk's gradients are computed in the forward pass while its logits are in cache
    (about a third faster on CPU at a few thousand items, and far less memory).
    """

    @staticmethod
    def forward(ctx, states: torch.Tensor, items: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        rows = len(states)
        grad_states = torch.empty_like(states)
        grad_items = torch.zeros_like(items)
        total = states.new_zeros(())
        for lo in range(0, rows, CE_CHUNK):
            chunk, target = states[lo : lo + CE_CHUNK], targets[lo : lo + CE_CHUNK]
            logits = chunk @ items.T
            lse = torch.logsumexp(logits, dim=1)
            total += (lse - logits.gather(1, target[:, None])[:, 0]).sum()
            probs = torch.exp(logits.sub_(lse[:, None]))
            probs[torch.arange(len(chunk)), target] -= 1.0
            grad_states[lo : lo + CE_CHUNK] = probs @ items
            grad_items.addmm_(probs.T, chunk)
        ctx.save_for_backward(grad_states, grad_items)
        ctx.rows = rows
        return total / rows

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad_states, grad_items = ctx.saved_tensors
        scale = grad_output / ctx.rows
        return grad_states * scale, grad_items * scale, None


@torch.no_grad()
def evaluate(net: OrderNet, validation: Validation, k: int = 10) -> dict[str, float]:
    """HR@k and NDCG@k of the held-out movies: full ranking over the catalogue, seen movies excluded."""
    net.eval()
    ranks = []
    items = net.item_matrix()
    for lo in range(0, len(validation.targets), EVAL_BATCH):
        hist = torch.from_numpy(validation.histories[lo : lo + EVAL_BATCH])
        scores = net.hidden(hist)[:, -1] @ items.T
        sel = (validation.seen_users >= lo) & (validation.seen_users < lo + EVAL_BATCH)
        scores[validation.seen_users[sel] - lo, validation.seen_items[sel]] = float("-inf")
        targets = torch.from_numpy(validation.targets[lo : lo + EVAL_BATCH] - 1)
        target_scores = scores.gather(1, targets[:, None])
        ranks.append((scores > target_scores).sum(1).numpy())
    rank = np.concatenate(ranks)
    hit = rank < k
    return {
        f"hr@{k}": round(float(hit.mean()), 4),
        f"ndcg@{k}": round(float(np.where(hit, 1 / np.log2(rank + 2), 0).mean()), 4),
    }
