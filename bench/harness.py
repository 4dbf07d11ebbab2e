"""Shared plumbing of the bench scripts: one stage per fresh process, reported as one JSON line.

A stage script calls :func:`report` once at the end; it prints ``BENCH {json}`` with the stage's figures
plus the process's own peak RSS (``ru_maxrss``) and the 1-minute load average. The orchestrator
(``bench/run_all.py``) spawns each stage with :func:`run_stage`, so peak RSS never accumulates across
stages, and reads that line back.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARK = "BENCH "
GB = 1e9

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def report(stage: str, figures: dict[str, Any]) -> None:
    """Print the stage's figures, its peak RSS and the load average as the process's result line."""
    payload = {"stage": stage, **figures, "peak_rss_bytes": peak_rss_bytes(), "load1_end": os.getloadavg()[0]}
    print(MARK + json.dumps(payload), flush=True)


def child_env() -> dict[str, str]:
    """The environment of a stage process: OpenBLAS single-threaded, as implicit asks and `make` sets."""
    return {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run_stage(argv: list[str], log_path: Path) -> dict[str, Any]:
    """Run `python <argv>` from the repo root in a fresh process; its result line, plus the wall time seen here.

    The child's stdout and stderr go to `log_path`; a failing stage raises with the log's tail.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        done = subprocess.run(
            [sys.executable, *argv],
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            check=False,
        )
        log.write(done.stdout)
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        tail = "\n".join(log_path.read_text(encoding="utf-8").splitlines()[-25:])
        raise RuntimeError(f"stage {' '.join(argv)} failed (exit {done.returncode}):\n{tail}")
    return {**json.loads(lines[-1][len(MARK) :]), "wall_seconds": wall, "load1_start": load_start}


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, Python and OS of this machine."""
    mem_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:")
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def wait_for_quiet(max_load: float, max_wait_s: float, chunk_s: float = 120.0) -> float:
    """Sleep in chunks until the 1-minute load average is <= max_load or max_wait_s has passed; the load then."""
    deadline = time.monotonic() + max_wait_s
    load = os.getloadavg()[0]
    while load > max_load and time.monotonic() < deadline:
        print(f"# load average {load:.2f} > {max_load}: waiting", file=sys.stderr, flush=True)
        time.sleep(min(chunk_s, max(1.0, deadline - time.monotonic())))
        load = os.getloadavg()[0]
    return load
