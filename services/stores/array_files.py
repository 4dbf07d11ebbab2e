"""Named sets of .npy arrays with a json of facts beside them, written whole and memory-mapped back.

A set ``name`` in ``directory`` is ``name.<part>.npy`` per array and ``name.json`` (its fingerprint, shapes
and any other facts). :func:`write_arrays` removes the json first and writes it last, every file
atomically (temporary name, fsync, rename: ``services.stores.atomic``); :func:`map_arrays` trusts a set only
when its json is there (naming the expected fingerprint) and every array has the size, shape and dtype
expected, so a half-written set reads as absent; :func:`read_arrays` maps a set for a reader that says itself
what is wrong. Neighbour tables, hybrid's default answers and the models' arrays are such sets: every process
that maps one shares its pages through the page cache.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from services.stores.atomic import atomic_path, fsync, write_text_atomic

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9_+-]+")
# the expected (shape, dtype) of each array, from the json's facts
Expected = Callable[[Mapping[str, Any]], Mapping[str, tuple[tuple[int, ...], Any]]]


def array_paths(directory: Path, name: str, parts: Sequence[str]) -> dict[str, Path]:
    """The files of set `name` (one per array part, and "json")."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a valid array set name: {name!r}")
    paths = {part: Path(directory) / f"{name}.{part}.npy" for part in parts}
    paths["json"] = Path(directory) / f"{name}.json"
    return paths


def write_arrays(directory: Path, name: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Write the set atomically: the old json goes first, the arrays next, the new json (`meta` and the time
    it was created) last."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = array_paths(directory, name, list(arrays))
    if paths["json"].exists():
        paths["json"].unlink()
        fsync(directory)
    for part, array in arrays.items():
        with atomic_path(paths[part]) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    facts = {**meta, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_text_atomic(paths["json"], json.dumps(facts, indent=2))
    (directory / f"{name}.npz").unlink(missing_ok=True)  # what an older version saved instead


def read_arrays(directory: Path, name: str, parts: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The set's arrays memory-mapped read-only and its json.
    FileNotFoundError when no json was written; ValueError when an array is missing or not the size its
    header states, or the set is the ``name.npz`` an older version saved."""
    paths = array_paths(directory, name, parts)
    meta = json.loads(paths["json"].read_text(encoding="utf-8"))
    arrays: dict[str, np.ndarray] = {}
    for part in parts:
        if not paths[part].is_file():
            older = Path(directory) / f"{name}.npz"
            raise ValueError(f"{older.name} was saved by an older version" if older.is_file() else f"no {part}")
        array = np.load(paths[part], mmap_mode="r", allow_pickle=False)
        if array.offset + array.nbytes != paths[part].stat().st_size:
            raise ValueError(f"{paths[part].name} is not the size its header states")
        arrays[part] = plain(array)
    return arrays, meta


def map_arrays(
    directory: Path, name: str, parts: Sequence[str], expected: Expected, fingerprint: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The set's arrays memory-mapped and its json, or None when it is missing, partial, inconsistent (sizes,
    shapes and dtypes against `expected(json)`) or (when `fingerprint` is given) built from other inputs."""
    paths = array_paths(directory, name, parts)
    try:
        meta = json.loads(paths["json"].read_text(encoding="utf-8"))
        if fingerprint is not None and meta["fingerprint"] != fingerprint:
            log.info("%s in %s was built from other inputs: ignored", name, directory)
            return None
        wanted = expected(meta)
        arrays = {part: np.load(paths[part], mmap_mode="r", allow_pickle=False) for part in parts}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("no usable %s in %s: %s", name, directory, exc)
        return None
    for part, (shape, dtype) in wanted.items():
        array = arrays[part]
        if array.offset + array.nbytes != paths[part].stat().st_size:
            log.info("%s: %s is not the size its header states", name, part)
            return None
        if array.shape != tuple(shape) or array.dtype != dtype:
            log.info("%s: %s is %s %s, expected %s %s", name, part, array.shape, array.dtype, shape, np.dtype(dtype))
            return None
    return {part: plain(array) for part, array in arrays.items()}, meta


def plain(array: np.ndarray) -> np.ndarray:
    """A mapped array as a plain ndarray over the same pages (its base keeps the mapping): numpy's memmap
    subclass runs Python for every slice and result it makes, a few microseconds each."""
    return array.view(np.ndarray)


def ascending(ids: np.ndarray) -> bool:
    """Whether the ids are strictly ascending (rows found by binary search)."""
    return len(ids) < 2 or bool(np.all(np.diff(ids) > 0))


class IdIndex:
    """Positions of movie ids in an array of distinct ids by binary search: no Python object per id (a dict of
    them is tens of MB per process at 87k movies)."""

    def __init__(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        self._order = None if ascending(ids) else np.argsort(ids, kind="stable")
        self._sorted = ids if self._order is None else ids[self._order]

    def positions(self, movie_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Each id's position (int64), -1 for an id not held."""
        wanted = np.asarray(movie_ids, dtype=np.int64).reshape(-1)
        if not len(self._sorted):
            return np.full(len(wanted), -1, dtype=np.int64)
        rows = np.minimum(np.searchsorted(self._sorted, wanted), len(self._sorted) - 1)
        found = np.where(self._sorted[rows] == wanted, rows, -1)
        return found if self._order is None else np.where(found >= 0, self._order[found], -1)

    def get(self, movie_id: int) -> int | None:
        """One id's position, None when it is not held."""
        row = int(np.searchsorted(self._sorted, movie_id))
        if row == len(self._sorted) or self._sorted[row] != movie_id:
            return None
        return row if self._order is None else int(self._order[row])

    def __contains__(self, movie_id: object) -> bool:
        return isinstance(movie_id, (int, np.integer)) and self.get(int(movie_id)) is not None
