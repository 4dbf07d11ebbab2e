"""Benchmark of the event store's WAL checkpoints (issue 21), in process, without HTTP: one writer stores batches
of 500 events (random event ids and users, as a platform's) through `EventStore.add` into a fresh SQLite file,
paced at 10,000 events/s for ``--steady`` seconds, then as fast as it can for ``--burst`` seconds, then paced
again for ``--after`` seconds. It prints each phase's batch times (from each batch's scheduled start) and, per
5 s of the last phase, the batch times and what the checkpointer did (how long each checkpoint took and how
many pages the WAL held).

    .venv/bin/python bench/wal_checkpoints.py
    .venv/bin/python bench/wal_checkpoints.py --burst 30 --after 60
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from services.stores.events import EventStore, WalCheckpointer

BATCH = 500
EVERY = BATCH / 10_000  # seconds between paced batches: 10,000 events/s
USERS = 20_000
WINDOW = 5  # seconds per line of the last phase


def batch(rng: np.random.Generator) -> list[dict[str, Any]]:
    at = datetime(2026, 12, 1, 20)
    users, movies = rng.integers(USERS, size=BATCH), rng.integers(1, 9_000, size=BATCH)
    return [
        {"event_id": uuid.UUID(int=int(rng.integers(2**63)) << 64).hex, "user_id": f"u{u}", "movie_id": int(m),
         "type": "watched", "rating": None, "at": at, "received": at}
        for u, m in zip(users.tolist(), movies.tolist())
    ]  # fmt: skip


def run(store: EventStore, rng: np.random.Generator, seconds: float, paced: bool) -> list[tuple[float, float]]:
    """(start, ms) of each batch: paced batches count from their scheduled start, the others from their own."""
    times = []
    due = start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        rows = batch(rng)
        if paced:
            time.sleep(max(0.0, due - time.perf_counter()))
        began = due if paced else time.perf_counter()
        store.add(rows)
        times.append((began, (time.perf_counter() - began) * 1000))
        due += EVERY
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steady", type=float, default=10, help="seconds paced at 10,000 events/s first")
    parser.add_argument("--burst", type=float, default=20, help="seconds as fast as one writer goes")
    parser.add_argument("--after", type=float, default=30, help="seconds paced again")
    args = parser.parse_args()
    checkpoints: list[tuple[float, float, int]] = []  # (end, seconds, WAL pages)
    checkpoint = WalCheckpointer.checkpoint

    def timed(self: WalCheckpointer) -> int:
        began = time.perf_counter()
        pages = checkpoint(self)
        checkpoints.append((time.perf_counter(), time.perf_counter() - began, pages))
        return pages

    WalCheckpointer.checkpoint = timed  # type: ignore[method-assign]
    work = Path(tempfile.mkdtemp(prefix="nextwatch-bench-wal-"))
    store = EventStore(f"sqlite:///{work / 'events.sqlite'}")
    rng = np.random.default_rng(21)
    try:
        phases = {
            "paced, fresh table": run(store, rng, args.steady, paced=True),
            "closed loop (burst)": run(store, rng, args.burst, paced=False),
            "paced, after the burst": run(store, rng, args.after, paced=True),
        }
        print(f"one writer, batches of {BATCH}; load 1-min {os.getloadavg()[0]:.1f}")
        for phase, times in phases.items():
            ms = np.array([t for _, t in times])
            print(
                f"{phase}: {len(ms)} batches, {len(ms) * BATCH / (times[-1][0] - times[0][0]):,.0f} events/s, "
                f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, max {ms.max():.1f} ms"
            )
        after = phases["paced, after the burst"]
        first = after[0][0]
        for w in range(0, int(args.after), WINDOW):
            ms = np.array([t for at, t in after if first + w <= at < first + w + WINDOW])
            done = [(s, p) for end, s, p in checkpoints if first + w <= end < first + w + WINDOW]
            spent = np.array([s * 1000 for s, _ in done]) if done else np.zeros(1)
            pages = np.array([p for _, p in done]) if done else np.zeros(1)
            print(
                f"  after +{w}-{w + WINDOW} s: batch p99 {np.percentile(ms, 99):.1f} ms; {len(done)} checkpoints, "
                f"median {np.median(spent):.0f} ms (max {spent.max():.0f}) over a WAL of median {np.median(pages):,.0f}"
                f" pages (max {pages.max():,.0f})"
            )
        print(f"{store.count():,} events stored")
    finally:
        store.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
