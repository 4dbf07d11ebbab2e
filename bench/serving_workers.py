"""Serving at 32M (issue 23): start and reload time, memory per worker, 1 vs 2 workers under uniform hybrid
traffic, in one run.

Over a data dir built by ``bench/api_latency.py --build-only`` (the 32M-shaped synthetic release through the
real steps, random vectors), whose `neighbours` step also wrote hybrid's default answers:

- start: ``nextwatch serve --workers W`` spawned until ``/ready`` answers 200 (W = 1 and 2);
- reload: opening the build as a watcher does on a new generation (``open_runtime(serving=True)``, in
  process), and, for comparison, what the server used to do at start: computing hybrid's default answers
  for every movie (``FusionStrategy.precompute``);
- memory: each worker's RSS and PSS (``/proc/<pid>/smaps_rollup``) after the load;
- throughput: a 5 s warm-up on other movies, then ``wrk -t1 -cN`` for ``--duration`` s over distinct movies
  drawn uniformly (hybrid, k=10, the default filter: the mapped answers), server latency from the access log;
- ``--start-cpu``: the CPU seconds of one worker's start in a fresh process (importing the app and uvicorn, then
  ``open_runtime(serving=True)`` and the title index), which the load of other work changes far less than
  the wall time, ``--repeats`` times;
- ``--answers``: only the build's answers step (``build_default_answers``, forced: it rewrites the same answers),
  whole and its computation alone (`FusionStrategy.default_answers` over every movie), ``--repeats`` times.

    .venv/bin/python bench/serving_workers.py --data-dir /tmp/nw23-32m
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from api_latency import run_wrk, server_latencies, workloads, wrk_script
from harness import ROOT

from services.settings import Settings

ENDPOINT = "/movies/{id}/recommendations?strategy=hybrid&k=10"
# one worker's start, in a fresh process: CPU seconds importing, then opening the build
START_CPU = """
import json, os, sys, time
c0 = time.process_time()
import uvicorn, services.api.app
from services.serving.runtime import open_runtime
from services.serving.titles import TitleIndex
from services.settings import Settings
c1 = time.process_time()
TitleIndex(open_runtime(Settings(data_dir=sys.argv[1]), serving=True))
c2 = time.process_time()
print(json.dumps({"import_cpu_s": round(c1 - c0, 2), "open_cpu_s": round(c2 - c1, 2), "load": os.getloadavg()[0]}))
"""


def start(data_dir: Path, workers: int, port: int, log: Path) -> tuple[subprocess.Popen[bytes], float]:
    """`nextwatch serve --workers W`, and the seconds until /ready answered 200."""
    env = {**os.environ, "NEXTWATCH_DATA_DIR": str(data_dir), "NEXTWATCH_ACCESS_LOG": "true"}
    began = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "serve", "--workers", str(workers), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return server, time.perf_counter() - began
        except httpx.HTTPError:
            pass
        time.sleep(0.02)


def processes(server: subprocess.Popen[bytes], workers: int, data_dir: Path) -> list[int]:
    """The processes that answer: the server itself, or its workers (its children that map the build)."""
    if workers == 1:
        return [server.pid]
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent == server.pid and str(data_dir) in (stat.parent / "maps").read_text():
                found.append(int(stat.parent.name))
        except OSError:
            continue
    return sorted(found)


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS and their anonymous / file parts of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) / 1024
    return {k: round(fields.get(k, 0.0), 1) for k in ("Rss", "Pss", "Pss_Anon", "Pss_File", "Anonymous")}


def reload_and_old_start(settings: Settings, repeats: int) -> dict[str, Any]:
    """Seconds to open the build as a reload does (each repeat), and to compute the answers as start did."""
    from services.serving.answers import DEFAULT_FILTER
    from services.serving.runtime import open_runtime

    opens = []
    for _ in range(repeats):
        began = time.perf_counter()
        runtime = open_runtime(settings, serving=True)
        opens.append(time.perf_counter() - began)
        answers = runtime.answers
        if _ < repeats - 1:
            runtime.close()
    hybrid = runtime.strategies["hybrid"]
    began = time.perf_counter()
    kept = hybrid.precompute(runtime.facts.movie_ids, settings.api.precompute_k, DEFAULT_FILTER)
    computed = time.perf_counter() - began
    runtime.close()
    return {"reload_s": opens, "answers": answers, "old_start_compute_s": computed, "computed_movies": kept}


def answers_step(settings: Settings, repeats: int) -> None:
    """Seconds of the `neighbours` step's answers (rewritten: use a scratch copy) and of their computation."""
    from pipelines.neighbours.answers import build_default_answers
    from services.serving.answers import DEFAULT_FILTER
    from services.serving.runtime import open_runtime

    for _ in range(repeats):
        load = os.getloadavg()
        began = time.perf_counter()
        build_default_answers(settings, force=True)
        step = time.perf_counter() - began
        runtime = open_runtime(settings.model_copy(update={"serve_models": "full"}))
        try:
            began = time.perf_counter()
            runtime.strategies["hybrid"].default_answers(
                runtime.facts.movie_ids, settings.api.precompute_k, DEFAULT_FILTER
            )
            computed = time.perf_counter() - began
        finally:
            runtime.close()
        print(json.dumps({"step_s": round(step, 1), "compute_s": round(computed, 1), "load": load}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/nw23-32m"))
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, nargs="+", default=[4])
    parser.add_argument("--ids", type=int, default=20_000)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--start-only", action="store_true", help="only start 1 and 2 workers, timed")
    parser.add_argument("--answers", action="store_true", help="only the build's answers step, timed")
    parser.add_argument("--start-cpu", action="store_true", help="only one worker's start, its CPU seconds")
    args = parser.parse_args()
    settings = Settings(data_dir=args.data_dir)
    if args.answers:
        answers_step(settings, args.repeats)
        return
    if args.start_cpu:
        for _ in range(args.repeats):
            done = subprocess.run([sys.executable, "-c", START_CPU, str(args.data_dir)], cwd=ROOT, capture_output=True)
            print(done.stdout.decode().strip(), flush=True)
        return
    from services.stores.catalog import Catalog

    catalog = Catalog(resolve(settings).catalog_url, read_only=True)
    facts = catalog.movie_facts()
    catalog.close()
    warm, loads = workloads(facts, args.ids, 7)
    result: dict[str, Any] = {"load_before": os.getloadavg(), "movies": len(facts.movie_ids), "runs": []}
    work = Path(tempfile.mkdtemp(prefix="nextwatch-bench23-"))
    try:
        base = f"http://127.0.0.1:{args.port}"
        if args.start_only:
            for workers in (1, 2):
                server, ready = start(args.data_dir, workers, args.port, work / f"start-{workers}.log")
                server.terminate()
                server.wait(timeout=60)
                print(json.dumps({"workers": workers, "ready_s": round(ready, 2), "load": os.getloadavg()}))
            return
        for workers in (1, 2):
            for connections in args.connections:
                log = work / f"server-{workers}-{connections}.log"
                server, ready = start(args.data_dir, workers, args.port, log)
                try:
                    run_wrk(base, wrk_script(work, warm, ENDPOINT, "warm"), 5, connections)
                    label = f"w{workers}c{connections}"
                    client = run_wrk(
                        base, wrk_script(work, loads["uniform"], ENDPOINT, label), args.duration, connections
                    )
                    time.sleep(1)
                    times, bad = server_latencies(log, label)
                    run = {
                        "workers": workers,
                        "connections": connections,
                        "ready_s": round(ready, 2),
                        "rps": client["rps"],
                        "requests": client["requests"],
                        "errors": client["errors"] + bad,
                        "p50": float(np.percentile(times, 50)),
                        "p99": float(np.percentile(times, 99)),
                        "memory": [memory(pid) for pid in processes(server, workers, args.data_dir)],
                        "load": os.getloadavg(),
                    }
                    result["runs"].append(run)
                    print(json.dumps(run), flush=True)
                finally:
                    server.terminate()
                    server.wait(timeout=60)
        result["reload"] = reload_and_old_start(settings, args.repeats)
        result["load_after"] = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))


def resolve(settings: Settings) -> Settings:
    from services.stores.generations import resolve_generation

    return resolve_generation(settings)


if __name__ == "__main__":
    main()
