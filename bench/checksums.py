"""What verifying the artifact checksums costs at MovieLens 32M shape (prints figures, asserts nothing).

Writes the served artifacts' files at 32M shape (random contents, the real dtypes and shapes: the two
neighbour tables, the ALS, sequential and learned models, the viewer histories), records their checksums as
the build steps do, then times ``damage`` over the tables alone and over everything: reading every file
(`nextwatch status`, and opening a generation whose files its writer did not see as they are), and checking
the files its writer saw (what the server runs when it opens a generation). The files were just written, so
they are in the page cache: the figures are the hashing cost, not the disk's.

    .venv/bin/python bench/checksums.py [--work /tmp/nw-sums] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.stores.checksums import damage, record

MOVIES = 87_585
RATINGS = 32_000_204
USERS = 200_948
N = 100
MB = 1e6
TABLES = ("neighbours/vector", "models/full/als/collaborative")


def _artifacts(rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Artifact key -> {file name: array}, at 32M shape."""
    table = {
        "movies": np.arange(MOVIES, dtype=np.int64),
        "ids": rng.integers(0, MOVIES, (MOVIES, N), dtype=np.int32),
        "scores": rng.random((MOVIES, N), dtype=np.float32),
    }
    return {
        "neighbours/vector": {f"vector.{k}.npy": v for k, v in table.items()},
        "models/full/als/collaborative": {f"collaborative.{k}.npy": v for k, v in table.items()},
        "models/full/als": {"item_factors.npy": rng.random((MOVIES, 64), dtype=np.float32)},
        "models/full/sequential": {
            "indices.npy": table["ids"],
            "scores.npy": table["scores"],
            "viewers.npy": table["ids"],
        },
        "models/full/learned": {"item_embedding.npy": rng.random((MOVIES + 1, 64), dtype=np.float32)},
        "models/full/histories": {
            "user_ids.npy": np.arange(USERS, dtype=np.int32),
            "indptr.npy": np.linspace(0, RATINGS, USERS + 1).astype(np.int64),
            "movies.npy": rng.integers(0, MOVIES, RATINGS, dtype=np.int32),
            "timestamps.npy": np.arange(RATINGS, dtype=np.int64),
            "ratings.npy": rng.random(RATINGS, dtype=np.float32),
        },
    }


def _timed(build_dir: Path, keys: list[str], repeat: int, *, full: bool) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        assert all(damage(build_dir, key, full=full) is None for key in keys)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="nw-sums-"))
    rng = np.random.default_rng(42)
    sizes: dict[str, int] = {}
    for key, files in _artifacts(rng).items():
        directory = work / (key.rsplit("/", 1)[0] if key in TABLES else key)  # a table's key ends with its name
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, array in files.items():
            np.save(directory / name, array)
            paths.append(directory / name)
        started = time.perf_counter()
        record(work, key, paths)
        print(f"record {key}: {time.perf_counter() - started:.2f} s")
        sizes[key] = sum(p.stat().st_size for p in paths)
    for label, keys in (("the two neighbour tables", list(TABLES)), ("every served artifact", list(sizes))):
        total = sum(sizes[k] for k in keys) / MB
        seconds = _timed(work, keys, args.repeat, full=True)
        print(f"read {label}: {total:,.0f} MB in {seconds:.2f} s ({total / seconds:,.0f} MB/s, best of {args.repeat})")
        seconds = _timed(work, keys, args.repeat, full=False)
        print(f"check {label} as seen by their writer: {seconds * 1000:.1f} ms (best of {args.repeat})")


if __name__ == "__main__":
    main()
