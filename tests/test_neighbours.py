"""Neighbour tables answer exactly as the live sources do, fall back to them where they must, and are
only trusted when completely written."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from pipelines.neighbours import als_table, exact_vector_table, source_table, stored_vectors
from services.recommender.filters import Filter
from services.recommender.sources import CollaborativeSource, SeriesSource, VectorSource
from services.recommender.strategies import ChainStrategy
from services.recommender.tabled import TabledSource
from services.serving.runtime import Runtime, open_runtime
from services.settings import Settings
from services.stores import neighbours
from services.stores.neighbours import NeighbourTable, load_table, write_table

N = 30
TOL = 1e-4


@pytest.fixture(scope="module")
def runtime(built_settings: Settings) -> Iterator[Runtime]:
    opened = open_runtime(built_settings, require=("vectors", "collaborative"))
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def vector_table(runtime: Runtime) -> NeighbourTable:
    ids, matrix = stored_vectors(runtime.vectors)
    return exact_vector_table(ids, matrix, N)


def assert_same_lists(got: Sequence[tuple[int, float]], want: Sequence[tuple[int, float]]) -> None:
    """Same length, scores position by position, and the same ids in the same order except among tied
    scores (the engine's and numpy's float sums may order exact ties differently)."""
    assert len(got) == len(want)
    assert len({m for m, _ in got}) == len(got)
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=TOL)
    wanted = dict(want)
    for position, (movie_id, score) in enumerate(got):
        if movie_id != want[position][0]:
            # only a tie may swap places: the id is elsewhere in the list with the same score, or it
            # displaced an equally scored one at the cut
            assert abs(wanted.get(movie_id, want[-1][1]) - score) <= TOL, (position, movie_id, score)


def assert_same_batches(got: list[list[tuple[int, float]]], want: list[list[tuple[int, float]]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_same_lists(g, w)


def test_vector_table_equals_exact_qdrant_search(runtime: Runtime, vector_table: NeighbourTable) -> None:
    info = runtime.vectors.info()
    assert info.points <= runtime.settings.qdrant.exact_search_max_points  # the live store searches exactly
    ids = vector_table.movie_ids.tolist()
    assert len(ids) == info.points and vector_table.ids.dtype == np.int32
    live = VectorSource(runtime.vectors)
    tabled = TabledSource(vector_table, live)
    assert tabled.name == "vector"
    for k in (1, 10, N):
        assert_same_batches(tabled.candidates(ids, k), live.candidates(ids, k))
        assert_same_batches(vector_table.candidates(ids, k), live.candidates(ids, k))
    assert all(m not in [c for c, _ in row] for m, row in zip(ids, vector_table.candidates(ids, N)))


def test_als_table_equals_collaborative_model(runtime: Runtime) -> None:
    model = runtime.collaborative
    table = als_table(model, N)
    ids = sorted(model.item_ids.tolist())
    assert table.movie_ids.tolist() == ids
    live = CollaborativeSource(model)
    tabled = TabledSource(table, live)
    for k in (1, 10, N):
        assert_same_batches(tabled.candidates(ids, k), live.candidates(ids, k))


def test_exact_table_breaks_ties_by_movie_id_and_pads_short_rows() -> None:
    ids = [40, 10, 30, 20]
    matrix = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    table = exact_vector_table(ids, matrix, 5)
    assert table.movie_ids.tolist() == [10, 20, 30, 40]
    assert table.ids.tolist() == [
        [30, 40, 20, -1, -1],
        [10, 30, 40, -1, -1],
        [10, 40, 20, -1, -1],
        [10, 30, 20, -1, -1],
    ]
    assert table.candidates([20, 99], 2) == [[(10, 0.0), (30, 0.0)], []]
    assert table.row(99) is None and table.row(10) == [(30, 1.0), (40, 1.0), (20, 0.0)]


def test_exact_table_agrees_with_brute_force_on_random_vectors() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(1500, 16)).astype(np.float32)
    matrix[7] = matrix[3]  # exact duplicates tie with each other and with everyone
    ids = rng.permutation(10_000)[:1500]
    table = exact_vector_table(ids, matrix, 40, block=97)
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    for row in rng.choice(1500, 60, replace=False).tolist() + [3, 7]:
        sims = unit @ unit[row]
        sims[row] = -np.inf
        best = np.lexsort((ids, -sims))[:40]
        got = table.row(int(ids[row]))
        assert_same_lists(got, [(int(ids[i]), float(sims[i])) for i in best])


def test_series_table_answers_like_the_series_source(runtime: Runtime) -> None:
    facts = runtime.facts
    live = SeriesSource(facts.movie_ids, facts.series_ids, facts.release_dates)
    table = source_table(live, facts.movie_ids, 10, batch=37)
    tabled = TabledSource(table, live)
    for k in (1, 3, 10, 25):
        assert tabled.candidates(facts.movie_ids, k) == live.candidates(facts.movie_ids, k)


class Recording:
    """Wraps a source and records which movies it was asked for, and how many candidates."""

    def __init__(self, source: VectorSource) -> None:
        self.name = source.name
        self.source = source
        self.asked: list[tuple[list[int], int]] = []

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        self.asked.append((list(movie_ids), k))
        return self.source.candidates(movie_ids, k)


def test_a_filtered_request_beyond_the_table_asks_the_live_store(runtime: Runtime) -> None:
    ids, matrix = stored_vectors(runtime.vectors)
    small = exact_vector_table(ids, matrix, 5)
    live = Recording(VectorSource(runtime.vectors))
    tabled = ChainStrategy("vector", [TabledSource(small, live)], facts=runtime.items)
    reference = ChainStrategy("vector", [VectorSource(runtime.vectors)], facts=runtime.items)
    rare = Filter.of(genre="Horror")
    movies = ids[:40].tolist()
    got = tabled.similar_batch(movies, 5, filter=rare)
    want = reference.similar_batch(movies, 5, filter=rare)
    assert_same_batches(
        [[(r.movie_id, r.score) for r in g] for g in got], [[(r.movie_id, r.score) for r in w] for w in want]
    )
    assert live.asked and all(k > small.n for _, k in live.asked)
    live.asked.clear()
    tabled.similar_batch(movies, 5)  # unfiltered: the table holds all of it
    assert live.asked == []


def test_a_movie_missing_from_the_table_is_answered_live(runtime: Runtime, vector_table: NeighbourTable) -> None:
    keep = np.arange(len(vector_table)) % 3 != 0
    partial = NeighbourTable(vector_table.movie_ids[keep], vector_table.ids[keep], vector_table.scores[keep])
    live = Recording(VectorSource(runtime.vectors))
    movies = vector_table.movie_ids[:30].tolist()
    got = TabledSource(partial, live).candidates(movies, 10)
    assert_same_batches(got, VectorSource(runtime.vectors).candidates(movies, 10))
    assert live.asked == [([m for i, m in enumerate(movies) if i % 3 == 0], 10)]
    assert TabledSource(partial, None, name="vector").candidates([movies[0]], 10) == [[]]


def test_a_complete_table_answers_unknown_movies_with_nothing(runtime: Runtime) -> None:
    """The ALS table holds every item of its model: a movie without a row is one ALS does not know."""
    table = als_table(runtime.collaborative, 20)
    live = Recording(CollaborativeSource(runtime.collaborative))
    unknown = max(runtime.facts.movie_ids) + 1
    known = table.movie_ids[:3].tolist()
    got = TabledSource(table, live, complete=True).candidates([*known, unknown], 10)
    assert got[-1] == [] and all(got[:3]) and live.asked == []
    TabledSource(table, live, complete=True).candidates(known, 30)  # beyond a full row: asked live
    assert live.asked == [(known, 30)]


def test_written_tables_load_memory_mapped(tmp_path: Path, vector_table: NeighbourTable) -> None:
    write_table(tmp_path, "vector", vector_table, "fp-1")
    loaded = load_table(tmp_path, "vector", "fp-1")
    assert loaded is not None and isinstance(loaded.ids.base, np.memmap)  # mapped, not read
    assert np.array_equal(loaded.ids, vector_table.ids) and np.array_equal(loaded.scores, vector_table.scores)
    movies = vector_table.movie_ids.tolist()
    assert loaded.candidates(movies, 7) == vector_table.candidates(movies, 7)
    assert load_table(tmp_path, "vector") is not None  # no fingerprint asked: any complete table
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "vector.ids.npy",
        "vector.json",
        "vector.movies.npy",
        "vector.scores.npy",
    ]


def test_half_written_tables_are_absent(tmp_path: Path, vector_table: NeighbourTable) -> None:
    assert load_table(tmp_path, "vector") is None
    write_table(tmp_path, "vector", vector_table, "fp-1")
    assert load_table(tmp_path, "vector", "fp-2") is None  # built from other inputs
    data = (tmp_path / "vector.ids.npy").read_bytes()
    (tmp_path / "vector.ids.npy").write_bytes(data[: len(data) // 2])  # truncated
    assert load_table(tmp_path, "vector", "fp-1") is None
    write_table(tmp_path, "vector", vector_table, "fp-1")
    (tmp_path / "vector.json").unlink()
    assert load_table(tmp_path, "vector", "fp-1") is None
    write_table(tmp_path, "vector", vector_table, "fp-1")
    np.save(tmp_path / "vector.scores.npy", vector_table.scores[:-1])  # rows disagree with the json
    assert load_table(tmp_path, "vector", "fp-1") is None


def test_an_interrupted_write_leaves_no_table_and_no_temp_files(
    tmp_path: Path, vector_table: NeighbourTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_table(tmp_path, "vector", vector_table, "fp-1")
    saved: list[int] = []

    def failing_save(handle, array, allow_pickle=False) -> None:
        saved.append(len(array))
        if len(saved) == 2:
            raise OSError("disk full")
        np.lib.format.write_array(handle, np.asanyarray(array), allow_pickle=allow_pickle)

    monkeypatch.setattr(neighbours.np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_table(tmp_path, "vector", vector_table, "fp-2")
    monkeypatch.undo()
    assert load_table(tmp_path, "vector", "fp-1") is None and load_table(tmp_path, "vector", "fp-2") is None
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
