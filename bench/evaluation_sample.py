"""Evaluation on a built data dir (the bundled sample): the table with intervals and the time per strategy.

    NEXTWATCH_DATA_DIR=/tmp/nw-eval .venv/bin/python bench/evaluation_sample.py --repeat 5
    NEXTWATCH_DATA_DIR=/tmp/nw-eval .venv/bin/python bench/evaluation_sample.py --served

Runs ``evaluate_step`` as ``nextwatch evaluate`` does (settings from the environment, tuned.json applied):
once cold (the evaluation build is retrained) and ``--repeat`` times warm. Prints Markdown: the scores with
95% user-bootstrap intervals, whether every run gave identical metrics, the median (min..max) batch seconds
and q/s per strategy, and the whole step's wall time cold and warm, with the 1-minute load average.
With ``--served`` it then starts ``nextwatch serve --evaluation`` on a free loopback port (after the in-process
runs: the embedded vector store opens in one process at a time), scores it once with ``--through-api``, says
whether it agrees exactly, and stops it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.evaluation.protocol import Protocol
from pipelines.evaluation.report import markdown_table
from pipelines.evaluation.run import (
    EvaluationRun,
    evaluate_step,
)
from services.settings import Settings
from services.stores.generations import resolve_generation


def metrics(run: EvaluationRun) -> dict:
    return {
        n: {k: v for k, v in s.as_dict(run.protocol.k).items() if k not in ("seconds", "qps")}
        for n, s in run.scores.items()
    }


def timed(settings: Settings, protocol: Protocol, **kwargs: object) -> tuple[EvaluationRun, float]:
    started = time.perf_counter()
    run = evaluate_step(settings, protocol, progress=False, **kwargs)
    return run, time.perf_counter() - started


@contextmanager
def served(settings: Settings) -> Iterator[str]:
    """`nextwatch serve --evaluation` on a free 127.0.0.1 port, stopped on exit; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    cli = Path(sys.executable).with_name("nextwatch")
    server = subprocess.Popen(
        [str(cli), "serve", "--evaluation", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="warm runs")
    parser.add_argument("--served", action="store_true", help="also score `nextwatch serve --evaluation`")
    args = parser.parse_args()
    settings = Settings()
    protocol = Protocol.from_settings(settings)

    shutil.rmtree(resolve_generation(settings).models_dir(evaluation=True), ignore_errors=True)
    cold, cold_s = timed(settings, protocol)
    warm = [timed(settings, protocol) for _ in range(args.repeat)]
    identical = all(metrics(run) == metrics(cold) for run, _ in warm)

    print(markdown_table(cold))
    print(
        f"\n{len(cold.pairs):,} pairs from {cold.users} users, {cold.pairs['prev_movieId'].nunique():,} distinct "
        f"previous movies; cutoff {cold.as_json()['cutoff']}; identical metrics in all {args.repeat + 1} runs: "
        f"{'yes' if identical else 'NO'}\n"
    )
    print("| strategy | batch seconds, median (min..max) of warm runs | q/s (median) |\n|---|---|---|")
    for name in cold.scores:
        seconds = [run.scores[name].seconds for run, _ in warm]
        qps = statistics.median(run.scores[name].qps for run, _ in warm)
        print(f"| {name} | {statistics.median(seconds):.3f} ({min(seconds):.3f}..{max(seconds):.3f}) | {qps:,.0f} |")
    walls = [s for _, s in warm]
    print(
        f"\n`evaluate_step`: cold (evaluation build retrained) {cold_s:.2f} s; warm median "
        f"{statistics.median(walls):.2f} s (min {min(walls):.2f}); load average at the end "
        f"{os.getloadavg()[0]:.2f}"
    )
    if args.served:
        with served(settings) as url:
            over_http, http_s = timed(settings, protocol, through_api=url)
        agree = "yes" if metrics(over_http) == metrics(cold) else "NO"
        print(
            f"\n`evaluate --through-api` (POST /recommendations/batch, 100 ids per request, 4 at a time): "
            f"{http_s:.2f} s; agrees exactly with in-process: {agree}"
            "; q/s per strategy: " + ", ".join(f"{n} {s.qps:,.0f}" for n, s in over_http.scores.items())
        )


if __name__ == "__main__":
    main()
