"""kill -9 in the middle of `nextwatch ingest | catalog | embed | train | tune`, then a rerun: the same
result as one uninterrupted run, nothing duplicated, and no half-written file left behind.

One clean chain of real CLI runs on a small real release (150 movies) gives each step's input (the data
dir after the step before) and expected output, and how long the step takes; each test copies the
input, starts the step as a child process, kills it with SIGKILL at a seeded random point of that
duration (past a first sign of progress where there is one), reruns it and compares.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.evaluation.protocol import ratings_fingerprint
from services.settings import Settings
from services.stores.vectors import EdgeVectorStore
from tests.support.data import write_release
from tests.support.tmdb_data import cli_env, nextwatch
from tests.test_tmdb_crash import catalog_rows

SEED = 20240612
CHAIN: tuple[tuple[str, list[str]], ...] = (
    ("ingest", ["ingest", "--quiet"]),
    ("catalog", ["catalog"]),
    ("embed", ["embed", "--quiet"]),
    ("train", ["train", "--quiet"]),
    ("tune", ["tune"]),
)
# a file whose appearance shows the step has started its work (not just importing)
KILL_ATTEMPTS = 5
PROGRESS_SIGN = {"ingest": ".ratings.parquet.tmp", "catalog": "catalog.sqlite", "embed": "embedding_cache.sqlite"}


def run(args: list[str], data: Path, cwd: Path, env: dict[str, str]) -> float:
    """Run the real CLI to completion; returns how long it took."""
    started = time.monotonic()
    child = nextwatch(args, env, cwd)
    out, err = child.communicate(timeout=600)
    assert child.returncode == 0, err
    return time.monotonic() - started


@pytest.fixture(scope="module")
def chain(sample: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The uninterrupted chain: the data dir before and after each step, and each step's duration."""
    root = tmp_path_factory.mktemp("chain")
    (root / "release").mkdir()
    release = write_release(sample, root / "release", 150)
    data = root / "data"
    env = environment(data, release)
    snapshots = {"": root / "empty"}
    snapshots[""].mkdir()
    took: dict[str, float] = {}
    for step, args in CHAIN:
        took[step] = run(args, data, root, env)
        snapshots[step] = shutil.copytree(data, root / f"after-{step}")
    return {"release": release, "snapshots": snapshots, "took": took, "root": root}


def environment(data: Path, release: Path) -> dict[str, str]:
    return cli_env(
        data,
        NEXTWATCH_SOURCE=str(release),
        NEXTWATCH_ALS_FACTORS="16",
        NEXTWATCH_ALS_ITERATIONS="5",
        NEXTWATCH_EMBEDDING_BATCH_SIZE="16",
    )


def kill_and_rerun(step: str, chain: dict[str, Any], tmp_path: Path) -> Path:
    """The step's input copied, the step killed with SIGKILL mid-way, then rerun; returns the data dir.

    The kill point is a seeded random fraction of the step's measured duration. A loaded machine can
    run the step faster than the clean chain did, so a step that ends before the kill lands is started
    again from a fresh copy of its input with the kill moved earlier (a few attempts, then a failure).
    """
    names = [name for name, _ in CHAIN]
    before = chain["snapshots"]["" if names.index(step) == 0 else names[names.index(step) - 1]]
    env_data = tmp_path / "data"
    env = environment(env_data, chain["release"])
    args = dict(CHAIN)[step]
    rng = random.Random(f"{SEED}-{step}")
    fraction = rng.uniform(0.3, 0.9) if step not in PROGRESS_SIGN else rng.uniform(0.0, 0.6)
    for _attempt in range(KILL_ATTEMPTS):
        shutil.rmtree(env_data, ignore_errors=True)
        data = shutil.copytree(before, env_data)
        if kill_midway(step, args, data, env, tmp_path, fraction, chain["took"][step]):
            break
        fraction *= 0.3
    else:
        pytest.fail(f"{step} ended before it was killed in {KILL_ATTEMPTS} attempts")

    run(args, data, tmp_path, env)
    leftovers = [p for p in data.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == [], leftovers
    return data


def kill_midway(
    step: str, args: list[str], data: Path, env: dict[str, str], cwd: Path, fraction: float, took: float
) -> bool:
    """Start the step and SIGKILL it `fraction` of the way through its clean duration `took` (of the part
    after its first sign of progress, where it has one); True when the kill landed, False when the step
    had already ended."""
    started = time.monotonic()
    child = nextwatch(args, env, cwd)
    sign = PROGRESS_SIGN.get(step)
    if sign is not None:
        while not (data / sign).exists() and child.poll() is None and time.monotonic() - started < 120:
            time.sleep(0.001)
        time.sleep(fraction * max(took - (time.monotonic() - started), 0.05))
    else:
        time.sleep(max(fraction * took - (time.monotonic() - started), 0))
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    return child.returncode == -signal.SIGKILL


def same_files(clean: Path, crashed: Path, pattern: str, compare: Callable[[Path, Path], None]) -> None:
    names = sorted(p.relative_to(clean) for p in clean.glob(pattern))
    assert names and names == sorted(p.relative_to(crashed) for p in crashed.glob(pattern))
    for name in names:
        compare(clean / name, crashed / name)


def same_parquet(a: Path, b: Path) -> None:
    left, right = pd.read_parquet(a), pd.read_parquet(b)
    if "rating" in left:
        assert ratings_fingerprint(left) == ratings_fingerprint(right)
    pd.testing.assert_frame_equal(left, right)


def same_npy(a: Path, b: Path) -> None:
    np.testing.assert_array_equal(np.load(a, allow_pickle=False), np.load(b, allow_pickle=False))


def vectors(data: Path) -> tuple[list[int], np.ndarray]:
    with EdgeVectorStore(data / "qdrant", Settings().qdrant.collection) as store:
        ids = sorted(int(i) for i in store.ids())
        found = store.vectors(ids)
        return ids, np.stack([found[i] for i in ids])


def test_kill_9_during_ingest(chain: dict[str, Any], tmp_path: Path) -> None:
    crashed = kill_and_rerun("ingest", chain, tmp_path)
    same_files(chain["snapshots"]["ingest"], crashed, "*.parquet", same_parquet)


def test_kill_9_during_catalog(chain: dict[str, Any], tmp_path: Path) -> None:
    crashed = kill_and_rerun("catalog", chain, tmp_path)
    assert catalog_rows(crashed) == catalog_rows(chain["snapshots"]["catalog"])


def test_kill_9_during_embed(chain: dict[str, Any], tmp_path: Path) -> None:
    crashed = kill_and_rerun("embed", chain, tmp_path)
    clean_ids, clean_vectors = vectors(chain["snapshots"]["embed"])
    ids, got = vectors(crashed)
    assert ids == clean_ids and len(set(ids)) == len(ids)
    np.testing.assert_allclose(got, clean_vectors, atol=1e-6)


def test_kill_9_during_train(chain: dict[str, Any], tmp_path: Path) -> None:
    crashed = kill_and_rerun("train", chain, tmp_path)
    same_files(chain["snapshots"]["train"], crashed, "models/full/als/model.*.npy", same_npy)
    meta = [
        json.loads((d / "models" / "full" / "als" / "model.json").read_text())
        for d in (chain["snapshots"]["train"], crashed)
    ]
    assert meta[0]["params"] == meta[1]["params"]


def test_kill_9_during_tune(chain: dict[str, Any], tmp_path: Path) -> None:
    crashed = kill_and_rerun("tune", chain, tmp_path)
    tuned = [json.loads((d / "tuned.json").read_text()) for d in (chain["snapshots"]["tune"], crashed)]
    assert tuned[0]["settings"] == tuned[1]["settings"]
    assert tuned[0]["validation"] == tuned[1]["validation"]
