"""The `neighbours` build step: write each source's table for the served build (and the evaluation build)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pipelines.neighbours.build import als_table, exact_vector_table, stored_vectors
from services.settings import Settings
from services.stores.collaborative import CollaborativeModel
from services.stores.neighbours import load_table, write_table
from services.stores.table_inputs import model_table_input, vector_table_input
from services.stores.vectors import open_vector_store


@dataclass(frozen=True)
class NeighboursResult:
    written: tuple[str, ...]  # the tables (re)computed by this run
    rows: int  # movies in the largest table written
    seconds: float


def write_collaborative_table(settings: Settings, step: str, *, force: bool = False) -> int:
    """The ALS table next to the model of `step` ("als": served, "als_eval": evaluation build): its rows,
    0 when the table was up to date (or there is no model)."""
    model_dir = settings.als_dir if step == "als" else settings.als_eval_dir
    wanted = model_table_input(settings, step)
    if wanted is None or (not force and load_table(model_dir, "collaborative", wanted) is not None):
        return 0
    table = als_table(CollaborativeModel.load(model_dir), settings.neighbours)
    write_table(model_dir, "collaborative", table, wanted)
    return len(table)


def build_neighbour_tables(settings: Settings, *, force: bool = False) -> NeighboursResult | None:
    """Exact vector neighbours from the stored vectors and ALS neighbours from the served model, each
    rewritten only when its inputs changed; None when every table was up to date."""
    started = time.perf_counter()
    written: list[str] = []
    rows = 0
    wanted = vector_table_input(settings)
    if wanted is not None and (force or load_table(settings.neighbours_dir, "vector", wanted) is None):
        store = open_vector_store(settings)
        try:
            ids, matrix = stored_vectors(store)
        finally:
            store.close()
        table = exact_vector_table(ids, matrix, settings.neighbours)
        write_table(settings.neighbours_dir, "vector", table, wanted)
        written.append("vector")
        rows = max(rows, len(table))
    als_rows = write_collaborative_table(settings, "als", force=force)
    if als_rows:
        written.append("collaborative")
        rows = max(rows, als_rows)
    if not written:
        return None
    return NeighboursResult(tuple(written), rows, round(time.perf_counter() - started, 2))
