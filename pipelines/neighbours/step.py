"""The `neighbours` build step: write the table of every registered source that has one."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pipelines.models.model_set import resolve
from pipelines.neighbours.answers import build_default_answers
from services.recommender.registry import REGISTRY
from services.settings import Settings
from services.stores.answers import NAME as ANSWERS
from services.stores.checksums import damage, record
from services.stores.neighbours import load_table, table_files, write_table
from services.stores.table_inputs import table_input, table_location


@dataclass(frozen=True)
class NeighboursResult:
    written: tuple[str, ...]  # the tables (re)computed by this run
    rows: int  # movies in the largest table (or the answers) written
    seconds: float


def build_neighbour_tables(
    settings: Settings, *, evaluation: bool = False, force: bool = False
) -> NeighboursResult | None:
    """Each source's table, rewritten only when its inputs changed or it is damaged (its files' checksums are
    recorded), then (served set) hybrid's default answers over them; None when all were up to date.

    A table computed from a model of the trained set lives beside that model (the served set, or the
    evaluation set with `evaluation`); the others (vector) belong to the build and are written only for the
    served set."""
    started = time.perf_counter()
    written: list[str] = []
    rows = 0
    for name, spec in REGISTRY.sources.items():
        if spec.table is None or (evaluation and spec.model is None):
            continue
        wanted = table_input(settings, spec.model, evaluation=evaluation)
        directory, key = table_location(settings, name, spec.model, evaluation=evaluation)
        if wanted is None:
            continue
        if not force and load_table(directory, name, wanted) is not None and damage(settings.build_dir, key) is None:
            continue
        table = resolve(spec.table.builder)(settings, directory)
        write_table(directory, name, table, wanted)
        record(settings.build_dir, key, table_files(directory, name))
        written.append(name)
        rows = max(rows, len(table))
    if not evaluation and (answered := build_default_answers(settings, force=force)) is not None:
        written.append(ANSWERS)
        rows = max(rows, answered)
    if not written:
        return None
    return NeighboursResult(tuple(written), rows, round(time.perf_counter() - started, 2))
