"""Benchmark of `POST /next` (a 20-movie history) against the one-movie route for the history's last movie,
measured in the same run on the same server.

The server is `nextwatch serve` (one uvicorn worker) over a built data dir (default: the bundled sample's,
made by `make run`); the histories are real viewers' last 20 ratings from that data dir. For each endpoint:
a 5 s warm-up, then `wrk -t1 -cN` on loopback for ``--duration`` seconds, cycling through the viewers.
Server-side latencies come from the access log (matched by the X-Request-ID wrk sets).

    .venv/bin/python bench/next_latency.py --data-dir data
    .venv/bin/python bench/next_latency.py --data-dir data --write BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from bench.api_latency import run_wrk, server_cpu_seconds, server_latencies, wait_until_ready
from tests.support.servers import free_port

HISTORY = 20
SECTION = "## History API"


def histories(data_dir: Path, n: int, seed: int = 0) -> list[list[int]]:
    """The last HISTORY ratings (time order) of up to n viewers who have that many."""
    ratings = pd.read_parquet(data_dir / "ratings.parquet", columns=["userId", "movieId", "timestamp"])
    ordered = ratings.sort_values(["userId", "timestamp", "movieId"], kind="stable")
    tails = ordered.groupby("userId")["movieId"].apply(lambda s: s.tolist()[-HISTORY:])
    full = [h for h in tails if len(h) == HISTORY]
    rng = np.random.default_rng(seed)
    return [full[i] for i in rng.permutation(len(full))[:n]]


def post_script(path: Path, bodies: list[str], tag: str) -> Path:
    script = path / f"{tag}.lua"
    quoted = ",".join("[[" + b + "]]" for b in bodies)
    script.write_text(
        f"local bodies = {{{quoted}}}\nlocal n = 0\nrequest = function()\n  n = n + 1\n"
        '  return wrk.format("POST", "/next", {["Content-Type"] = "application/json", '
        f'["X-Request-ID"] = "{tag}-" .. n}}, bodies[(n % #bodies) + 1])\nend\n'
    )
    return script


def get_script(path: Path, paths: list[str], tag: str) -> Path:
    script = path / f"{tag}.lua"
    quoted = ",".join(f'"{p}"' for p in paths)
    script.write_text(
        f"local paths = {{{quoted}}}\nlocal n = 0\nrequest = function()\n  n = n + 1\n"
        f'  return wrk.format("GET", paths[(n % #paths) + 1], {{["X-Request-ID"] = "{tag}-" .. n}})\nend\n'
    )
    return script


def serve(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    """`nextwatch serve` with one worker (the target's) and the access log on."""
    env = {**os.environ, "NEXTWATCH_DATA_DIR": str(data_dir), "NEXTWATCH_ACCESS_LOG": "true", "NEXTWATCH_WORKERS": "1"}
    nextwatch = Path(sys.executable).with_name("nextwatch")
    server = subprocess.Popen(
        [str(nextwatch), "serve", "--port", str(port)], env=env, stderr=log.open("w"), stdout=subprocess.DEVNULL
    )
    return wait_until_ready(server, port, log)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    viewers = histories(args.data_dir, args.viewers)
    warm, timed = viewers[: len(viewers) // 4], viewers[len(viewers) // 4 :]
    work = Path(tempfile.mkdtemp(prefix="nextwatch-bench-next-"))
    log = work / "server.log"
    server = serve(args.data_dir, args.port, log)
    base = f"http://127.0.0.1:{args.port}"
    endpoints = {
        "POST /next (20-movie history)": lambda hs, tag: post_script(
            work, [json.dumps({"history": h, "k": 10}) for h in hs], tag
        ),
        "GET /movies/{last}/recommendations": lambda hs, tag: get_script(
            work, [f"/movies/{h[-1]}/recommendations?k=10" for h in hs], tag
        ),
    }
    rows = []
    try:
        for i, (label, script) in enumerate(endpoints.items()):
            run_wrk(base, script(warm, f"warm{i}"), 5, args.connections)
            cpu = server_cpu_seconds(server.pid)
            client = run_wrk(base, script(timed, f"run{i}"), args.duration, args.connections)
            cpu = server_cpu_seconds(server.pid) - cpu
            times, bad = server_latencies(log, f"run{i}")
            rows.append(
                {
                    "endpoint": label,
                    "rps": client["rps"],
                    "p50": float(np.percentile(times, 50)),
                    "p99": float(np.percentile(times, 99)),
                    "errors": client["errors"] + bad,
                    "requests": client["requests"],
                    "cpu_ms": cpu * 1000 / max(client["requests"], 1),
                }
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return {"rows": rows, "viewers": len(timed), "duration": args.duration, "connections": args.connections}


def report(run: dict[str, Any], command: str) -> str:
    lines = [
        SECTION,
        "",
        f"`{command}`: one uvicorn worker over the built data dir, {run['viewers']} real viewers' last {HISTORY} "
        f"ratings, `wrk -t1 -c{run['connections']}` for {run['duration']} s per row after a 5 s warm-up; server "
        "latency from the access log; the server's CPU time per request (its process's user + system time over the "
        "timed run) and the requests a second that CPU time allows one worker. Target (issue 19): `POST /next` p50 "
        "<= 2 ms and >= 500 req/s.",
        "",
        "| endpoint | req/s | server p50 ms | p99 ms | server CPU ms/request | 1,000 / CPU ms | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['endpoint']} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['cpu_ms']:.3f} | "
        f"{1000 / r['cpu_ms']:,.0f} | {r['errors']} |"
        for r in run["rows"]
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--viewers", type=int, default=400)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--write", type=Path, help="replace this section of BENCHMARKS.md")
    args = parser.parse_args()
    args.port = args.port or free_port()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    section = report(measure(args), "python bench/next_latency.py --data-dir " + str(args.data_dir))
    print(section)
    if args.write:
        write_section(args.write, section)


if __name__ == "__main__":
    main()
