"""What experiments cost `GET /users/{id}/next` (issue 22): the exposure insert and the variant assignment.

A copy of a built data dir (``--data-dir``, never written; deleted at the end) is served by one uvicorn
worker (`nextwatch serve`'s code) in three configurations, measured in alternating rounds (the machine is
shared and noisy) with wrk on loopback (`-t1`, ``--connections``), 20 MovieLens viewers (k=10, the
default strategy):

- ``no exposure log``: the route as before this issue (the exposure insert replaced by nothing);
- ``no experiments``: each answer logged as an exposure (variant null), no experiments file;
- ``experiment 50/50``: an experiment of two hybrid variants, each answer assigned and logged.

The cost of each is per round (against that round's ``no exposure log``), then the median over rounds.

    .venv/bin/python bench/experiments.py --data-dir /tmp/nw-try/data
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.api_latency import run_wrk, wait_until_ready
from bench.events import movielens_users
from bench.next_latency import get_script
from services.stores.events import EventStore
from tests.support.servers import free_port

EXPERIMENT = """[experiments.next-list]
salt = "bench"
control = "hybrid"
variants.hybrid = { share = 0.5, strategy = "hybrid" }
variants.also-hybrid = { share = 0.5, strategy = "hybrid" }
"""  # both variants answer alike: what is measured is the assignment and the logging
# the server without the exposure insert: the route as it was before experiments (bench only)
NO_LOG = (
    "import services.api.history as h; h.log_exposure = lambda *args: None; "
    "from services.serving.server import serve; from services.settings import Settings; serve(Settings())"
)
SERVE = "from services.serving.server import serve; from services.settings import Settings; serve(Settings())"
CONFIGS = ("no exposure log", "no experiments", "experiment 50/50")


def serve(data_dir: Path, config: str, work: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NEXTWATCH_DATA_DIR": str(data_dir), "NEXTWATCH_PORT": str(port), "NEXTWATCH_WORKERS": "1"}
    env.pop("NEXTWATCH_EXPERIMENTS", None)
    if config == "experiment 50/50":
        path = work / "experiments.toml"
        path.write_text(EXPERIMENT, encoding="utf-8")
        env["NEXTWATCH_EXPERIMENTS"] = str(path)
    log = work / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-c", NO_LOG if config == "no exposure log" else SERVE],
        env=env,
        stderr=log.open("w"),
        stdout=subprocess.DEVNULL,
    )
    return wait_until_ready(server, port, log)


def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    work = Path(tempfile.mkdtemp(prefix="nw-experiments-"))
    try:
        data = work / "data"
        shutil.copytree(args.data_dir, data, ignore=shutil.ignore_patterns("events.sqlite*", "*.lock"))
        # an events database with the event table, as where viewers post events (none of the benched viewers')
        at = datetime(2026, 12, 1)
        row = {"event_id": "bench", "user_id": "bench", "movie_id": 1, "type": "watched", "rating": None}
        EventStore(f"sqlite:///{data / 'events.sqlite'}").add([{**row, "at": at, "received": at}])
        paths = [f"/users/{u}/next?k=10" for u in movielens_users(data, 20, 200)]
        rps: dict[str, list[float]] = {c: [] for c in CONFIGS}
        for round_ in range(args.rounds):
            for config in CONFIGS if round_ % 2 == 0 else CONFIGS[::-1]:
                port = free_port()
                server = serve(data, config, work, port)
                try:
                    script = get_script(work, paths, f"r{round_}")
                    base = f"http://127.0.0.1:{port}"
                    run_wrk(base, script, 3, args.connections)  # warm-up
                    result = run_wrk(base, script, args.seconds, args.connections)
                    assert result["errors"] == 0, result["raw"]
                    rps[config].append(result["rps"])
                    print(f"round {round_} {config}: {result['rps']:.0f} req/s", flush=True)
                finally:
                    server.terminate()
                    server.wait(timeout=30)
        return rps
    finally:
        shutil.rmtree(work, ignore_errors=True)


def table(rps: dict[str, list[float]], args: argparse.Namespace) -> str:
    base = np.asarray(rps[CONFIGS[0]])
    lines = [
        f"`GET /users/{{id}}/next?k=10` for 20 MovieLens viewers, one uvicorn worker, wrk -t1 -c{args.connections}, "
        f"{args.seconds} s a run, {args.rounds} alternating rounds. Command: `.venv/bin/python bench/experiments.py "
        "--data-dir DIR`.",
        "",
        "| configuration | req/s per round | throughput cost (median of the rounds' ratios) |",
        "|---|---|---|",
    ]
    for config in CONFIGS:
        runs = ", ".join(f"{r:.0f}" for r in rps[config])
        cost = 100 * (1 - float(np.median(np.asarray(rps[config]) / base)))
        lines.append(f"| {config} | {runs} | {cost:+.1f}% |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    print(table(measure(args), args))


if __name__ == "__main__":
    main()
