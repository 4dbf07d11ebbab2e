"""Hybrid's default answers for every movie, written by the `neighbours` step after the tables they read."""

from __future__ import annotations

import logging

from services.recommender.fusion import FusionStrategy
from services.serving.answers import DEFAULT_FILTER, answers_input, answers_location, live_store_sources
from services.serving.runtime import open_runtime
from services.settings import Settings
from services.stores.answers import answer_files, load_answers, write_answers
from services.stores.checksums import damage, record

log = logging.getLogger(__name__)


def build_default_answers(settings: Settings, *, force: bool = False) -> int | None:
    """Hybrid's answer to the API's default request (k = ``api.precompute_k``, the default filter) for every
    catalogue movie, computed by the strategy the server runs over this generation and written with its
    fingerprint and checksums; rewritten only when what they depend on changed or they are damaged. Returns
    the movies answered, None when up to date (or not wanted: k 0, or a store-backed source without a table,
    which the server answers live)."""
    k = settings.api.precompute_k
    if not k:
        return None
    runtime = open_runtime(settings.model_copy(update={"serve_models": "full"}))
    try:
        hybrid = runtime.strategies.get("hybrid")
        if not isinstance(hybrid, FusionStrategy):
            return None
        live = live_store_sources(hybrid, runtime.tables)
        if live:
            log.warning("hybrid's default answers not built: %s have no table", ", ".join(live))
            return None
        directory, key = answers_location(runtime.settings)
        wanted = answers_input(runtime.settings, runtime.facts)
        if not force and load_answers(directory, wanted) is not None and damage(settings.build_dir, key) is None:
            return None
        answers = hybrid.default_answers(runtime.facts.ids.tolist(), k, DEFAULT_FILTER)
    finally:
        runtime.close()
    write_answers(directory, answers, wanted)
    record(settings.build_dir, key, answer_files(directory))
    return int(len(answers.movies))
