"""`nextwatch status`: what the data dir holds, from which source, when it was built, and what is stale."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from pipelines.ingest.source import read_source
from pipelines.models.model_set import EVENTS, stale_models
from pipelines.steps import catalog_inputs
from services.recommender.registry import REGISTRY
from services.serving.answers import answers_input, answers_location
from services.settings import Settings
from services.stores.answers import answer_files, load_answers
from services.stores.build_state import BuildState
from services.stores.catalog import Catalog
from services.stores.checksums import damaged
from services.stores.events import EventStore, EventSummary
from services.stores.generations import current_generation, generations, resolve_generation
from services.stores.neighbours import load_table
from services.stores.table_inputs import model_state_key, table_input, table_location


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
    stale = stale_steps(settings)
    lines.append(f"steps: {'all up to date' if not stale else 'stale: ' + '; '.join(stale)}")
    lines.append(_events_line(settings, stored_events(settings)))
    evaluation = settings.models_dir(evaluation=True)
    lines.append(f"evaluation build: {'trained ' + _when(evaluation) if evaluation.is_dir() else 'none yet'}")
    broken = [f"evaluation build damaged: {p}" for p in damaged(settings.build_dir, _evaluation).values()]
    lines.extend(broken)
    lines.append(_tuned_line(settings))
    lines.append(_next(stale, evaluation_damaged=bool(broken)))
    return lines


def _evaluation(key: str) -> bool:
    """Whether an artifact key belongs to the evaluation build (trained before the test window)."""
    return key.startswith(model_state_key("", evaluation=True))


def _next(stale: list[str], *, evaluation_damaged: bool) -> str:
    """What to run: a build redoes what is stale or damaged in a new generation (the served one is never
    rewritten); `evaluate` retrains a damaged evaluation build."""
    if stale:
        return "next: run `nextwatch build`"
    if evaluation_damaged:
        return "next: run `nextwatch evaluate` (it retrains the damaged evaluation build)"
    return "next: nothing to build; `nextwatch serve` serves it"


def stale_steps(settings: Settings) -> list[str]:
    """The build steps the served generation needs again, each with why; empty when it is up to date (events
    that cannot be read count as those the served models learned from)."""
    settings = resolve_generation(settings)
    events = stored_events(settings) or _served_events(settings)
    state = BuildState(settings.build_dir)
    stale: list[str] = []
    catalog = state.digest("catalog")
    if catalog is None:
        stale.append("catalog (never built)")
    elif catalog != catalog_inputs(settings):
        stale.append("catalog (its inputs changed)")
    models = stale_models(settings.with_tuned(), events=events)
    if models:
        never = any(state.digest(model_state_key(m, evaluation=False)) is None for m in models)
        stale.append(f"train ({'never built' if never else 'its inputs changed'})")
    embedded = state.noted(f"{settings.vectors_state_key}:content").get("text")
    if state.digest(settings.vectors_state_key) is None:
        stale.append("embed (never built)")
    elif embedded is not None and embedded != settings.with_tuned().content.text:
        stale.append(f"embed (its text is {embedded!r}, the settings want {settings.with_tuned().content.text!r})")
    for name, spec in REGISTRY.sources.items():
        wanted = table_input(settings, spec.model) if spec.table is not None else None
        directory, _ = table_location(settings, name, spec.model)
        if wanted is not None and load_table(directory, name, wanted) is None:
            stale.append(f"neighbours: {name} table (missing or older than its inputs)")
    answers = _answers_stale(settings)
    if answers is not None:
        stale.append(f"neighbours: hybrid answers ({answers})")
    # every artifact of the served set whose files differ from the checksums recorded when they were written
    stale.extend(f"damaged: {p}" for p in damaged(settings.build_dir, lambda key: not _evaluation(key)).values())
    return stale


def _answers_stale(settings: Settings) -> str | None:
    """Why hybrid's default answers in the build are not those the server would map (the server answers per
    request then); None when they are, or when none are wanted or the catalog cannot be read."""
    served = settings.with_tuned().model_copy(update={"serve_models": "full"})
    directory, _ = answers_location(served)
    if not served.api.precompute_k:
        return None
    catalog = Catalog(served.catalog_url, read_only=True)
    try:
        facts = catalog.movie_facts()
    except SQLAlchemyError:
        return None  # the catalog line says what is wrong with it
    finally:
        catalog.close()
    if load_answers(directory, answers_input(served, facts)) is not None:
        return None
    return "older than their inputs" if answer_files(directory)[-1].exists() else "not built"


def _served_events(settings: Settings) -> EventSummary:
    """The events the served models learned from (count, latest received), as `train` noted them."""
    noted = BuildState(settings.build_dir).noted(EVENTS)
    latest = noted.get("latest")
    return EventSummary(int(noted.get("count", 0)), datetime.fromisoformat(latest) if latest else None, 0)


def stored_events(settings: Settings) -> EventSummary | None:
    """The events stored now (`after`: those received after the served models' latest one); None when the
    event store cannot be read."""
    settings = resolve_generation(settings)
    store = EventStore(settings.events_store_url)
    try:
        return store.summary(after=_served_events(settings).latest)
    except SQLAlchemyError:
        return None
    finally:
        store.close()


def _events_line(settings: Settings, now: EventSummary | None) -> str:
    """How many events the served models learned from, and how many came (or were forgotten) since."""
    served = _served_events(settings)
    if now is None:
        return f"events: {served.count:,} in the served models; the event store cannot be read"
    if (now.count, now.latest) == (served.count, served.latest):
        return f"events: {served.count:,} in the served models, none since" if served.count else "events: none yet"
    gone = served.count + now.after - now.count
    changes = [f"{now.after:,} since"] + ([f"{gone:,} forgotten"] if gone > 0 else [])
    return f"events: {served.count:,} in the served models, {', '.join(changes)} (run `nextwatch build`)"


def _tuned_line(settings: Settings) -> str:
    if not settings.tuned_path.is_file():
        return "tuned: no (run `nextwatch tune` to choose settings on the validation window)"
    saved = json.loads(settings.tuned_path.read_text(encoding="utf-8"))
    window = saved.get("validation", {})
    return (
        f"tuned: {', '.join(sorted(saved.get('settings', {})))} on {window.get('pairs', '?')} validation pairs "
        f"({window.get('first', '?')} .. {window.get('last', '?')})"
    )
