"""Hybrid's default answers made by the build (neighbours step): mapped by the server, equal to the strategy
computed per request for every movie, never computed by the server, and rebuilt (never served) when what
they depend on changed: here the catalogue's adult and series flags, as a TMDB apply changes them."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest

from pipelines import steps
from pipelines.status import status_lines
from services.recommender.fusion import FusionStrategy
from services.serving.answers import DEFAULT_FILTER
from services.serving.runtime import Runtime, open_runtime
from services.settings import Settings
from services.stores.answers import answer_files
from services.stores.catalog import Catalog
from services.stores.generations import resolve_generation
from tests.support.servers import private_copy


def assert_same_answers(served: Runtime, plain: Runtime) -> None:
    """Every movie's default answer from the mapped artifact equals the one computed per request."""
    hybrid, live = served.strategies["hybrid"], plain.strategies["hybrid"]
    ids = list(served.facts.movie_ids)
    assert hybrid.precomputed is not None and len(hybrid.precomputed) == len(ids)
    for movie in ids:
        assert hybrid.recommend_batch([movie], 10, filter=DEFAULT_FILTER) == live.recommend_batch(
            [movie], 10, filter=DEFAULT_FILTER
        )
    for k in (10, 20):  # 20: not the precomputed shape, computed as before
        assert hybrid.recommend_batch(ids, k, filter=DEFAULT_FILTER) == live.recommend_batch(
            ids, k, filter=DEFAULT_FILTER
        )


def test_the_mapped_answers_equal_the_strategy_computed_per_request_for_every_movie(
    built_settings: Settings,
) -> None:
    served, plain = open_runtime(built_settings, serving=True), open_runtime(built_settings)
    try:
        assert served.answers == "mapped" and plain.strategies["hybrid"].precomputed is None
        assert_same_answers(served, plain)
    finally:
        served.close()
        plain.close()


def test_the_server_never_computes_the_answers(
    built_settings: Settings, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = private_copy(built_settings, tmp_path_factory.mktemp("no-answers") / "data")
    for path in answer_files(resolve_generation(settings).neighbours_dir):
        path.unlink()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server computed hybrid's default answers")

    monkeypatch.setattr(FusionStrategy, "default_answers", refuse)
    rt = open_runtime(settings, serving=True)
    try:
        assert rt.answers == "live: not in this build" and rt.strategies["hybrid"].precomputed is None
        assert rt.strategies["hybrid"].recommend_batch([rt.facts.movie_ids[0]], 10, filter=DEFAULT_FILTER).items[0]
    finally:
        rt.close()


def test_stale_or_damaged_answers_are_rebuilt_by_the_build_never_served(
    built_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = private_copy(built_settings, tmp_path_factory.mktemp("stale-answers") / "data")
    served = resolve_generation(settings)
    before = open_runtime(settings, serving=True)
    try:
        answered = before.strategies["hybrid"].recommend_batch(before.facts.movie_ids, 10, filter=DEFAULT_FILTER)
    finally:
        before.close()
    recommended = sorted({r.movie_id for items in answered.items for r in items})
    adult, moved = recommended[:5], recommended[5:8]
    series = next(s for s in before.facts.series_ids if s is not None)
    catalog = Catalog(served.catalog_url)  # what a TMDB apply does: flags change, no catalog step
    try:
        catalog.update_movies({"movie_id": m, "adult": "Y"} for m in adult)
        catalog.update_movies({"movie_id": m, "series_id": series} for m in moved)
    finally:
        catalog.close()
    stale = open_runtime(settings, serving=True)
    try:
        assert stale.answers == "live: computed from other inputs"
        assert stale.strategies["hybrid"].precomputed is None
    finally:
        stale.close()
    assert "neighbours: hybrid answers (older than their inputs)" in "\n".join(status_lines(settings))

    results = steps.build(settings, progress=False)
    assert "hybrid-answers" in results["neighbours"].written
    rebuilt = resolve_generation(settings)
    assert rebuilt.generation != served.generation
    served_now, plain = open_runtime(settings, serving=True), open_runtime(settings)
    try:
        assert served_now.answers == "mapped"
        assert "hybrid answers" not in "\n".join(status_lines(settings))
        assert_same_answers(served_now, plain)
        fresh = served_now.strategies["hybrid"].recommend_batch(served_now.facts.movie_ids, 10, filter=DEFAULT_FILTER)
        assert not {r.movie_id for items in fresh.items for r in items} & set(adult)
    finally:
        served_now.close()
        plain.close()

    scores = next(p for p in answer_files(rebuilt.neighbours_dir) if p.name.endswith(".scores.npy"))
    data = bytearray(scores.read_bytes())
    data[-1] ^= 0xFF  # a same-size overwrite (nothing has it mapped here)
    scores.write_bytes(bytes(data))
    damaged = open_runtime(settings, serving=True)
    try:
        assert damaged.answers.startswith("live: damaged (") and damaged.strategies["hybrid"].precomputed is None
    finally:
        damaged.close()
    results = steps.build(settings, progress=False)
    assert "hybrid-answers" in results["neighbours"].written
    repaired = open_runtime(settings, serving=True)
    try:
        assert repaired.answers == "mapped"
    finally:
        repaired.close()
