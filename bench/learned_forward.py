"""The learned model's numpy forward pass per history length, on a built model (no server, no training): the
fastest of ``--rounds`` rounds of ``--calls`` passes each (the fastest round is the one the machine disturbed
least), for histories of 1, 20, 50, 100 and 200 random movies (50, 100 and 200: the windows `nextwatch tune` chooses
among), and for a batch of 256 histories of 50 (evaluation scores histories of one length together).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/learned_forward.py --model data/current/models/full/learned
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from services.stores.order_model import OrderModel

LENGTHS = (1, 20, 50, 100, 200)
BATCH = (256, 50)  # evaluation's shape: a block of 256 histories of one length at once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a learned model's directory (order_model.json)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    model = OrderModel.load(args.model)
    rng = np.random.default_rng(0)
    figures = []
    for batch, n in [(1, n) for n in LENGTHS] + [BATCH]:
        items = rng.integers(1, len(model.item_ids) + 1, size=(batch, min(n, model.params.max_len)))
        calls = max(1, args.calls // batch)
        best = float("inf")
        for _ in range(args.rounds):
            began = time.perf_counter()
            for _ in range(calls):
                model._forward(items)
            best = min(best, (time.perf_counter() - began) / calls)
        figures.append(
            f"{n} movies {best * 1000:.3f} ms" if batch == 1 else f"{batch} x {n} movies {best * 1000:.1f} ms"
        )
    print(f"forward pass, fastest of {args.rounds} rounds: " + ", ".join(figures))


if __name__ == "__main__":
    main()
