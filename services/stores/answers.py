"""Hybrid's default answers as the build wrote them: per query movie its k (id, score, source) best first.

The set ``hybrid-answers`` in the build's neighbours directory (``services.stores.array_files``):
``movies`` (int64 ``[rows]``, ascending: the movies that have an answer), ``ids`` (int32 ``[rows, k]``,
padded with -1), ``scores`` (float64 ``[rows, k]``: the fused scores exactly as computed per request) and
``sources`` (int8 ``[rows, k]``, indices into the json's ``names``); the json also keeps k, the parts that
were absent when they were computed (``missing``) and the fingerprint of everything they depend on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.stores.array_files import array_paths, ascending, map_arrays, write_arrays

NAME = "hybrid-answers"
_ARRAYS = ("movies", "ids", "scores", "sources")


@dataclass(frozen=True)
class AnswerArrays:
    """The answers of the movies in `movies` (ascending), one row each."""

    movies: np.ndarray  # int64 [rows]
    ids: np.ndarray  # int32 [rows, k], padded with -1
    scores: np.ndarray  # float64 [rows, k]
    sources: np.ndarray  # int8 [rows, k]: index into names
    names: list[str]
    missing: list[str]  # the parts absent when the answers were computed

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])


def answers_key(build_dir: Path, directory: Path) -> str:
    """The answers' artifact key in the build state's checksums."""
    return f"{directory.relative_to(build_dir).as_posix()}/{NAME}"


def answer_files(directory: Path) -> list[Path]:
    """The answers' files in `directory` (arrays and json)."""
    return list(array_paths(directory, NAME, _ARRAYS).values())


def write_answers(directory: Path, answers: AnswerArrays, fingerprint: str) -> None:
    """Write the answers atomically (json last)."""
    arrays: dict[str, np.ndarray] = {
        "movies": np.asarray(answers.movies, dtype=np.int64),
        "ids": np.asarray(answers.ids, dtype=np.int32),
        "scores": np.asarray(answers.scores, dtype=np.float64),
        "sources": np.asarray(answers.sources, dtype=np.int8),
    }
    if not ascending(arrays["movies"]):
        raise ValueError("the answers' movie ids must be strictly ascending")
    rows, k = arrays["ids"].shape
    meta = {
        "fingerprint": fingerprint,
        "rows": int(rows),
        "k": int(k),
        "names": list(answers.names),
        "missing": list(answers.missing),
    }
    write_arrays(directory, NAME, arrays, meta)


def _shapes(meta: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], Any]]:
    rows, k = int(meta["rows"]), int(meta["k"])
    return {
        "movies": ((rows,), np.int64),
        "ids": ((rows, k), np.int32),
        "scores": ((rows, k), np.float64),
        "sources": ((rows, k), np.int8),
    }


def load_answers(directory: Path, fingerprint: str) -> AnswerArrays | None:
    """The answers memory-mapped, None when missing, partial, inconsistent or computed from other inputs."""
    mapped = map_arrays(directory, NAME, _ARRAYS, _shapes, fingerprint)
    if mapped is None:
        return None
    arrays, meta = mapped
    if not ascending(arrays["movies"]):
        return None
    names, missing = [str(n) for n in meta["names"]], [str(m) for m in meta["missing"]]
    return AnswerArrays(arrays["movies"], arrays["ids"], arrays["scores"], arrays["sources"], names, missing)
