"""Hybrid's default answers computed up front: the same answers as computed per request, only for the
precomputed request shape, never frozen while degraded; the API's runtime maps the build's answers only when
tables answer every store-backed source (tests/test_build_answers.py: the build's artifact)."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from collections.abc import Sequence

import pytest

from services.recommender.filters import Filter
from services.serving.runtime import open_runtime
from services.settings import Settings
from services.stores.generations import resolve_generation
from tests.support.servers import private_copy
from tests.test_fusion import CATALOG, ListSource, facts, hybrid, random_lists

ADULT_OUT = Filter.of((), None, include_adult=False)


class Counted(ListSource):
    """A source that counts the movies it is asked about, and can fail its first `failures` calls."""

    def __init__(self, source: ListSource, failures: int = 0) -> None:
        super().__init__(source.name, source.lists)
        self.queries = 0
        self.failures = failures

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        self.queries += len(movie_ids)
        if self.failures:
            self.failures -= 1
            raise ConnectionError(f"{self.name} is down")
        return super().candidates(movie_ids, k)


def pair(failures: int = 0):
    """Two identical hybrids over the same lists: one to precompute, one to compare with."""
    made = []
    for fail in (failures, 0):
        sources = [Counted(random_lists("a", 1), fail), Counted(random_lists("b", 2))]
        made.append(hybrid(sources=sources, facts=facts(), optional=["a"]))
    return made


def test_precomputed_answers_equal_the_answers_computed_per_request() -> None:
    precomputed, live = pair()
    assert precomputed.precompute(CATALOG, 5, ADULT_OUT) == len(CATALOG)
    for movie in CATALOG:
        assert precomputed.recommend_batch([movie], 5, filter=ADULT_OUT) == live.recommend_batch(
            [movie], 5, filter=ADULT_OUT
        )
    assert precomputed.recommend_batch(CATALOG, 5, filter=ADULT_OUT) == live.recommend_batch(
        CATALOG, 5, filter=ADULT_OUT
    )


@pytest.mark.parametrize(
    "request_shape",
    [
        {"k": 6, "filter": ADULT_OUT},
        {"k": 5, "filter": None},
        {"k": 5, "filter": Filter.of((2,), None, include_adult=False)},
        {"k": 5, "filter": Filter.of((), "Drama", include_adult=False)},
        {"k": 5, "filter": ADULT_OUT, "explain": True},
    ],
)
def test_any_other_request_is_computed_as_before(request_shape: dict) -> None:
    precomputed, live = pair()
    precomputed.precompute(CATALOG, 5, ADULT_OUT)
    asked = precomputed.sources[0].queries
    precomputed.recommend_batch([3], 5, filter=ADULT_OUT)
    assert precomputed.sources[0].queries == asked  # the precomputed request asks no source
    assert precomputed.recommend_batch([3], **request_shape) == live.recommend_batch([3], **request_shape)
    assert precomputed.sources[0].queries > asked


def test_answers_degraded_while_precomputing_are_not_kept() -> None:
    precomputed, live = pair(failures=1)
    kept = precomputed.precompute(CATALOG, 5, ADULT_OUT)  # one batch of 1,000: all of it degraded
    assert kept == 0 and precomputed.precomputed is not None
    served = precomputed.recommend_batch([3], 5, filter=ADULT_OUT)
    assert served == live.recommend_batch([3], 5, filter=ADULT_OUT) and served.missing == []


def test_no_answers_are_mapped_without_a_table_for_a_weighted_store_source(
    built_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Vector weighted but its table gone: the build's answers would not be what each request gets (a live
    search), so none are mapped; nor with NEXTWATCH_PRECOMPUTE_K=0."""
    settings = private_copy(
        built_settings,
        tmp_path_factory.mktemp("no-vector-table") / "data",
        fusion_weights={"sequential": 1.0, "vector": 0.5},
    )
    for table in resolve_generation(settings).neighbours_dir.glob("vector.*"):
        table.unlink()
    rt = open_runtime(settings, serving=True)
    try:
        assert "vector" not in rt.tables and rt.strategies["hybrid"].precomputed is None
        assert rt.answers == "live: vector answer live (no table)"
    finally:
        rt.close()
    rt = open_runtime(built_settings.updated(precompute_k=0), serving=True)
    try:
        assert rt.strategies["hybrid"].precomputed is None and rt.answers == "off"
    finally:
        rt.close()
