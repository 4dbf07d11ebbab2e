"""Training steps of the learned model with torch's OpenMP threads spinning or sleeping while they wait.

"unset" is OpenMP's default (torch's waiting threads spin a while before they sleep), what training ran
with before `services/__init__.py` asked for "PASSIVE". Each run is a fresh process (the wait policy is read
once, when torch loads) that times `--steps` training steps on the longest windows of the data
(`bench/order_model.py`'s ``--data``), after one warm-up step, and prints wall and CPU seconds. The
policies alternate, `--rounds` times, so both see the same machine; the load average is printed beside each run.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/training_threads.py --data ml-1m-half --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ("unset", "PASSIVE")  # unset: OpenMP's default (spin a while, then sleep)


def time_steps(data: str, steps: int, threads: int) -> dict[str, float]:
    """Wall and CPU seconds of `steps` training steps of batch_size full-length windows (in this process)."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch  # before the project (services/__init__.py asks for PASSIVE where the policy is unset)

    from bench.order_model import load
    from pipelines.sequence.train import OrderNet, _loss, training_windows, user_sequences
    from services.stores.order_model import OrderParams

    params = OrderParams()
    seqs = user_sequences(load(data, None))
    windows = training_windows(seqs.items, seqs.indptr, params.max_len, params.windows)
    longest = torch.from_numpy(windows[np.argsort(-np.count_nonzero(windows, axis=1), kind="stable")])
    torch.manual_seed(params.seed)
    torch.set_num_threads(threads)
    net = OrderNet(len(seqs.item_ids), params).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=params.lr)
    negatives = torch.Generator().manual_seed(params.seed)

    def step(i: int) -> None:
        batch = longest[i * params.batch_size : (i + 1) * params.batch_size]
        inputs, targets = batch[:, :-1], batch[:, 1:]
        valid = inputs != 0
        loss = _loss(net, net.hidden(inputs)[valid], targets[valid], params, len(seqs.item_ids), negatives)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(0)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(1, steps + 1):
        step(i)
    return {"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(time.process_time() - cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="ml-1m-half")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(time_steps(args.data, args.steps, args.threads)))
        return
    for _ in range(args.rounds):
        for policy in POLICIES:
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            if policy != "unset":
                env["OMP_WAIT_POLICY"] = policy
            command = [sys.executable, __file__, "--child", "--data", args.data, "--steps", str(args.steps),
                       "--threads", str(args.threads)]  # fmt: skip
            load = os.getloadavg()[0]
            out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
            figures = json.loads(out.strip().splitlines()[-1])
            print(f"{policy:8s} {args.steps} steps on {args.threads} threads: wall {figures['wall_s']:6.2f} s, "
                  f"CPU {figures['cpu_s']:6.2f} s (load {load:.1f})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
