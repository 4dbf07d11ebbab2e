"""Hybrid's default answers: what they depend on (a fingerprint the build writes and the server checks), and
mapping the build's artifact into the served hybrid. The server never computes them: without an artifact
that matches what it serves, hybrid answers each request live and the log says why."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from services.recommender.filters import Filter
from services.recommender.fusion import FusionStrategy
from services.recommender.precomputed import PrecomputedAnswers
from services.recommender.registry import REGISTRY, store_parts
from services.recommender.strategies import BatchStrategy
from services.settings import Settings
from services.stores.answers import answer_files, answers_key, load_answers
from services.stores.build_state import BuildState, fingerprint
from services.stores.catalog import MovieFacts
from services.stores.checksums import damage
from services.stores.neighbours import NeighbourTable
from services.stores.table_inputs import model_state_key, table_input

log = logging.getLogger(__name__)

# the API's default request: no exclusions, any genre, no adult movies
DEFAULT_FILTER = Filter.of((), None, include_adult=False)
# the settings the one-movie sources and the fusion read when they answer (tuned values applied); the
# models' training settings are in their build digests
_READ = {"fusion", "content", "serve_models"}


def facts_digest(facts: MovieFacts) -> str:
    """A digest of the catalogue facts the sources and filters read (ids, series, release dates, rating counts,
    adult flags, genres): a TMDB apply that changes a flag changes it, without a catalog step."""
    digest = hashlib.blake2b(digest_size=16)
    for column in (facts.ids, facts.series, facts.released, facts.counts, facts.is_adult, facts.genre_codes):
        digest.update(f"{column.dtype.str}{column.shape}".encode())
        digest.update(np.ascontiguousarray(column).tobytes())
    digest.update(json.dumps(facts.genre_texts).encode("utf-8"))
    return digest.hexdigest()


def answers_input(settings: Settings, facts: MovieFacts) -> str:
    """The fingerprint of hybrid's default answers over `settings` (tuned) and the catalogue `facts`: the
    fusion and source settings, k and the default filter, the served model set's and the vectors' build
    digests, the tables' fingerprints and the facts themselves."""
    evaluation = settings.serve_models == "evaluation"
    state = BuildState(settings.build_dir)
    models = {name: state.digest(model_state_key(name, evaluation=evaluation)) for name in REGISTRY.models}
    tables = {
        name: table_input(settings, spec.model, evaluation=evaluation)
        for name, spec in REGISTRY.sources.items()
        if spec.table is not None
    }
    return fingerprint(
        "hybrid-answers",
        settings.api.precompute_k,
        repr(DEFAULT_FILTER),
        settings.model_dump(mode="json", include=_READ),
        settings.protocol.seed,
        models,
        state.digest(settings.vectors_state_key),
        tables,
        facts_digest(facts),
    )


def live_store_sources(hybrid: FusionStrategy, tables: Mapping[str, NeighbourTable]) -> list[str]:
    """The store-backed sources hybrid asks that no table answers (each movie would wait on a live search)."""
    return sorted({s.name for s in hybrid.sources} & (set(store_parts()) - set(tables)))


def answers_location(settings: Settings) -> tuple[Path, str]:
    """Where the answers live (the build's neighbours directory) and their checksum key."""
    return settings.neighbours_dir, answers_key(settings.build_dir, settings.neighbours_dir)


def map_default_answers(
    settings: Settings, strategies: Mapping[str, BatchStrategy], tables: Mapping[str, NeighbourTable], facts: MovieFacts
) -> str:
    """Serve hybrid's default request from the build's answers, memory-mapped, when they match what is
    served (fingerprint) and are intact (checksums); what happened, also logged."""
    hybrid, k = strategies.get("hybrid"), settings.api.precompute_k
    if not k or not isinstance(hybrid, FusionStrategy):
        return "off"
    live = live_store_sources(hybrid, tables)
    if live:
        return _live(f"{', '.join(live)} answer live (no table)")
    directory, key = answers_location(settings)
    problem = damage(settings.build_dir, key)
    if problem is not None:
        log.error("%s is damaged and not served: %s (run `nextwatch build`)", key, problem)
        return _live(f"damaged ({problem})")
    arrays = load_answers(directory, answers_input(settings, facts))
    if arrays is None:
        built = answer_files(directory)[-1].exists()
        return _live("computed from other inputs" if built else "not in this build")
    hybrid.precomputed = PrecomputedAnswers(arrays, DEFAULT_FILTER)
    log.info("hybrid's default answers (k=%d) for %s movies mapped from the build", k, f"{len(arrays.movies):,}")
    return "mapped"


def _live(why: str) -> str:
    log.warning("hybrid's default answers answered per request: %s (run `nextwatch build`)", why)
    return f"live: {why}"
