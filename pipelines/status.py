"""`nextwatch status`: what the data dir holds, from which source, when it was built, and what is stale."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pipelines.ingest.source import read_source
from pipelines.models.model_set import stale_models
from pipelines.steps import catalog_inputs
from services.recommender.registry import REGISTRY
from services.settings import Settings
from services.stores.build_state import BuildState
from services.stores.generations import current_generation, generations, resolve_generation
from services.stores.neighbours import load_table
from services.stores.table_inputs import model_state_key, table_input


def _when(path: Path) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(path.stat().st_mtime)) if path.exists() else "never"


def status_lines(settings: Settings) -> list[str]:
    """Human-readable lines; the last one says what to run when anything is stale."""
    settings = resolve_generation(settings)
    data_dir = settings.data_dir
    lines = [f"data dir: {data_dir}"]
    source = read_source(data_dir)
    if source is None:
        return [*lines, "source: nothing ingested yet", "next: run `nextwatch build`"]
    lines.append(
        f"source: {source.source} ({source.ratings:,} ratings, {source.users:,} users, "
        f"{source.movies:,} movies; ingested {source.ingested_at})"
    )
    current = current_generation(data_dir)
    kept = generations(data_dir)
    if current is None:
        lines.append("build: flat layout (no generations yet: the next `nextwatch build` makes one)")
    else:
        lines.append(f"build generation: {current} (built {_when(settings.build_dir)}); kept: {', '.join(kept)}")
    state = BuildState(settings.build_dir)
    stale: list[str] = []
    catalog = state.digest("catalog")
    if catalog is None:
        stale.append("catalog (never built)")
    elif catalog != catalog_inputs(settings):
        stale.append("catalog (its inputs changed)")
    models = stale_models(settings.with_tuned())
    if models:
        never = any(state.digest(model_state_key(m, evaluation=False)) is None for m in models)
        stale.append(f"train ({'never built' if never else 'its inputs changed'})")
    if state.digest(settings.vectors_state_key) is None:
        stale.append("embed (never built)")
    for name, spec in REGISTRY.sources.items():
        wanted = table_input(settings, spec.model) if spec.table is not None else None
        directory = settings.models_dir() / spec.model if spec.model else settings.neighbours_dir
        if wanted is not None and load_table(directory, name, wanted) is None:
            stale.append(f"neighbours: {name} table (missing or older than its inputs)")
    lines.append(f"steps: {'all up to date' if not stale else 'stale: ' + '; '.join(stale)}")
    evaluation = settings.models_dir(evaluation=True)
    lines.append(f"evaluation build: {'trained ' + _when(evaluation) if evaluation.is_dir() else 'none yet'}")
    lines.append(_tuned_line(settings))
    lines.append("next: run `nextwatch build`" if stale else "next: nothing to build; `nextwatch serve` serves it")
    return lines


def _tuned_line(settings: Settings) -> str:
    if not settings.tuned_path.is_file():
        return "tuned: no (run `nextwatch tune` to choose settings on the validation window)"
    saved = json.loads(settings.tuned_path.read_text(encoding="utf-8"))
    window = saved.get("validation", {})
    return (
        f"tuned: {', '.join(sorted(saved.get('settings', {})))} on {window.get('pairs', '?')} validation pairs "
        f"({window.get('first', '?')} .. {window.get('last', '?')})"
    )
