"""Time and peak memory of ``pipelines.ingest.movielens.ingest`` on a MovieLens-32M-shaped CSV.

    .venv/bin/python bench/ingest_memory.py                      # synthetic 32,000,204 rows (~890 MB)
    .venv/bin/python bench/ingest_memory.py --rows 2000000       # smaller
    .venv/bin/python bench/ingest_memory.py --source /path/ml-32m   # a real release

The synthetic ratings.csv has the real file's shape (userId sorted, ~200k users, ~290k movie
ids, half-star ratings, 10-digit timestamps) and is cached under --work. Each ingest runs in a
fresh subprocess that reports its own peak RSS (ru_maxrss, Linux KiB). Prints one JSON line
per run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import resource, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from pipelines.ingest.movielens import ingest
t = time.perf_counter()
r = ingest({source!r}, Path({out!r}), progress=False)
print(r.ratings, r.users, r.movies, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def synthesize(path: Path, rows: int, seed: int = 0) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    stars = np.array(["0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0", "4.5", "5.0"])
    n_users = max(1, rows * 200_948 // 32_000_204)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(b"userId,movieId,rating,timestamp\n")
        step = 2_000_000
        for start in range(0, rows, step):
            n = min(step, rows - start)
            users = np.sort(rng.integers(start * n_users // rows, (start + n) * n_users // rows + 1, n)) + 1
            table = pa.table(
                {
                    "u": users.astype(np.int32),
                    "m": rng.integers(1, 292_758, n).astype(np.int32),
                    "r": pa.array(stars[rng.integers(0, 10, n)]),
                    "t": rng.integers(789_652_009, 1_697_164_147, n),
                }
            )
            pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=32_000_204)
    ap.add_argument("--source", help="ingest this source instead of a synthetic CSV")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "nextwatch-bench")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()

    source = args.source
    if source is None:
        csv = args.work / f"synthetic-{args.rows}" / "ratings.csv"
        if not csv.exists():
            t = time.perf_counter()
            synthesize(csv, args.rows)
            print(
                f"# wrote {csv} ({csv.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.1f}s",
                file=sys.stderr,
            )
        source = str(csv.parent)
    out = args.work / "out"
    for _ in range(args.repeat):
        code = CHILD.format(root=str(ROOT), source=source, out=str(out))
        done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        ratings, users, movies, seconds, peak_kib = done.stdout.split()
        print(
            json.dumps(
                {
                    "source": source,
                    "ratings": int(ratings),
                    "users": int(users),
                    "movies": int(movies),
                    "seconds": round(float(seconds), 2),
                    "peak_rss_mib": round(int(peak_kib) / 1024, 1),
                    "ratings_parquet_mib": round((out / "ratings.parquet").stat().st_size / 2**20, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
