"""The learned order-aware model against a peer implementation: RecTools' SASRec, on the same split.

Protocol: the last-item split of `bench/order_model.py` (each user's last rating tests, full ranking over the
catalogue, the user's seen movies excluded). Both models get the same architecture (2 blocks, 64 dims, one
head, dropout 0.2, full softmax cross-entropy, the last `--max-len` movies) and the same fixed number of
epochs (no wall-clock budget and no early stopping, so the figures do not depend on the machine's load), and
train on every rating before the test targets. Printed side by side with 95% user-bootstrap intervals and
the paired difference.

RecTools is a peer, not a dependency of nextwatch: install it beside the project's environment with
``make peer-deps`` (into ``.peer-site/``, next to the venv's own torch), then

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=.peer-site .venv/bin/python bench/peer_sasrec.py --data sample --epochs 20
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=.peer-site .venv/bin/python bench/peer_sasrec.py --data ml-1m-half --epochs 10
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.order_model import K, histories, last_item_split, load, metrics, ranks
from pipelines.evaluation.bootstrap import user_bootstrap
from services.stores.order_model import OrderParams


def train_ours(before: pd.DataFrame, hist: list[list[int]], args: argparse.Namespace) -> tuple[np.ndarray, float]:
    """nextwatch's model trained for exactly `epochs`; the 0-based rank of each test target."""
    from pipelines.sequence.train import train_order_model

    params = OrderParams(
        dims=64, blocks=2, heads=1, max_len=args.max_len, dropout=0.2, epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size, loss="ce", max_seconds=None, validation_users=0, seed=args.seed,
    )  # fmt: skip
    started = time.perf_counter()
    model = train_order_model(before, params, progress=False)
    seconds = time.perf_counter() - started
    return ranks(model.scores(hist), model.item_ids, hist, args.targets), seconds


def train_rectools(before: pd.DataFrame, users: np.ndarray, args: argparse.Namespace) -> tuple[np.ndarray, float]:
    """RecTools' SASRecModel with the same architecture and epochs; the rank of each target in its top list."""
    from rectools import Columns
    from rectools.dataset import Dataset
    from rectools.models import SASRecModel

    interactions = pd.DataFrame(
        {
            Columns.User: before["userId"].to_numpy(),
            Columns.Item: before["movieId"].to_numpy(),
            Columns.Weight: 1.0,
            Columns.Datetime: pd.to_datetime(before["timestamp"], unit="s"),
        }
    )
    dataset = Dataset.construct(interactions)
    model = SASRecModel(
        n_blocks=2, n_heads=1, n_factors=64, dropout_rate=0.2, session_max_len=args.max_len, loss="softmax",
        lr=args.lr, batch_size=args.batch_size, epochs=args.epochs, deterministic=True, verbose=0,
    )  # fmt: skip
    started = time.perf_counter()
    model.fit(dataset)
    seconds = time.perf_counter() - started
    top = model.recommend(users=users, dataset=dataset, k=K, filter_viewed=True)
    position = {
        (int(u), int(i)): int(r) - 1
        for u, i, r in top[[Columns.User, Columns.Item, Columns.Rank]].itertuples(index=False)
    }
    rank = np.array([position.get((int(u), int(t)), K) for u, t in zip(users, args.targets)], dtype=np.int64)
    return rank, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="sample", help="sample, ml-1m-half, or an ml-1m layout directory")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--models", default="ours,rectools", help="which to train: ours, rectools or both")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores)")
    train, val, test = last_item_split(load(args.data, None))
    users = test["userId"].to_numpy()
    args.targets = test["movieId"].to_numpy()
    before = pd.concat([train, val]).sort_values(["userId", "timestamp", "movieId"], kind="stable")
    before = before[["userId", "movieId", "rating", "timestamp"]].reset_index(drop=True)
    hist = histories(before, users)
    print(f"last-item protocol on {args.data}: {len(users):,} users, {len(before):,} training ratings; "
          f"{args.epochs} epochs, max_len {args.max_len}, lr {args.lr}, batch {args.batch_size}")  # fmt: skip

    results = {}
    runs = {"ours": ("nextwatch learned", lambda: train_ours(before, hist, args)),
            "rectools": ("RecTools SASRec", lambda: train_rectools(before, users, args))}  # fmt: skip
    for name, run in (runs[m] for m in args.models.split(",")):
        rank, seconds = run()
        results[name] = {**metrics(rank, users, args.resamples, 0), "seconds": seconds}
        print(f"{name}: HR@{K} {results[name]['hr@10']:.3f} in {seconds:.0f} s", flush=True)

    print("\n| model | HR@10 [95% CI] | NDCG@10 [95% CI] | training s |")
    print("|---|---|---|---|")
    for name, r in results.items():
        hr, nd = r["hr@10_ci"], r["ndcg@10_ci"]
        print(f"| {name} | {r['hr@10']:.3f} [{hr[0]:.3f}, {hr[1]:.3f}] | {r['ndcg@10']:.3f} "
              f"[{nd[0]:.3f}, {nd[1]:.3f}] | {r['seconds']:.0f} |")  # fmt: skip
    if len(results) < 2:
        return
    ours, peer = results["nextwatch learned"], results["RecTools SASRec"]
    diff = user_bootstrap(users, {"hr": ours["hit"] - peer["hit"]}, resamples=args.resamples, seed=0)["hr"]
    print(f"\npaired nextwatch - RecTools: HR@10 {ours['hr@10'] - peer['hr@10']:+.3f} "
          f"[{diff[0]:+.3f}, {diff[1]:+.3f}]; load average at the end: {os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
