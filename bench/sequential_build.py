"""Time the sequential model build at MovieLens-32M shape, with peak memory.

    PYTHONPATH=$PWD /work/main/.venv/bin/python -m pipelines.cli synth --scale 32m --out /tmp/ml32m-synth
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/sequential_build.py \
        --ratings /tmp/ml32m-synth/ratings.csv

Reads ``ratings.csv`` (or parquet) with pyarrow, then builds with the given parameters (``--repeat`` times).
Prints the load time, each build's wall time, the peak RSS sampled every 20 ms during the builds, and the
process's peak RSS overall (which includes reading the CSV).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Self

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.collaborative.sequential import build_sequential
from services.stores.sequential import SequentialParams

TYPES = {"userId": pa.int32(), "movieId": pa.int32(), "rating": pa.float32(), "timestamp": pa.int64()}


def read_ratings(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pq.read_table(path, columns=list(TYPES)).to_pandas()
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=TYPES, include_columns=list(TYPES)))
    return table.to_pandas()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples this process's resident memory in a thread; `peak` is the highest seen."""

    def __init__(self, every: float = 0.02) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratings", type=Path, default=Path("/tmp/ml32m-synth/ratings.csv"))
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--backward-weight", type=float, default=1.0)
    parser.add_argument("--damping", type=float, default=0.0)
    parser.add_argument("--neighbours", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    params = SequentialParams(
        window=args.window,
        backward_weight=args.backward_weight,
        popularity_damping=args.damping,
        neighbours=args.neighbours,
        min_rating=None,
    )
    started = time.perf_counter()
    ratings = read_ratings(args.ratings)
    loaded = time.perf_counter() - started
    gib = 2**30
    print(
        f"loaded {len(ratings):,} ratings, {ratings['userId'].nunique():,} users, "
        f"{ratings['movieId'].nunique():,} movies in {loaded:.1f} s; RSS {rss_bytes() / gib:.2f} GiB; "
        f"load avg {os.getloadavg()[0]:.2f}"
    )
    print(f"params: {params}")
    with PeakRss() as peak:
        for _ in range(args.repeat):
            started = time.perf_counter()
            model = build_sequential(ratings, params)
            print(
                f"build: {time.perf_counter() - started:.1f} s, {model.info['neighbours_kept']:,} neighbours kept "
                f"for {model.info['movies']:,} movies; load avg {os.getloadavg()[0]:.2f}"
            )
    overall = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        f"peak RSS during the builds: {peak.peak / gib:.2f} GiB (process peak incl. the CSV read: "
        f"{overall / gib:.2f} GiB)"
    )


if __name__ == "__main__":
    main()
