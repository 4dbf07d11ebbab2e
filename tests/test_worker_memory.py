"""What a worker keeps per movie is arrays, not Python objects (issue 23), and the build's block fusion equals
the per-request fusion: catalogue facts and titles as columns read a few thousand rows at a time, filters and
id lookups over them, popularity counts as arrays, and `fuse_block` against `fuse` to the bit."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest

from services.recommender.filters import Filter, ItemFacts, MovieSet
from services.recommender.fusion import fuse
from services.recommender.precomputed import PAD, fuse_block
from services.stores.array_files import IdIndex
from services.stores.catalog import Catalog, MovieFacts, Titles
from services.stores.popularity import Counts

STAMP = datetime(2026, 1, 1, 12, 0, 0)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    cat.create_schema()
    cat.upsert_series([{"series_id": s, "series_title": f"s{s}", "regtime": STAMP} for s in (7, -3)])
    rows = [
        {
            "movie_id": m,
            "movie_title": f"영화 {m}" if m % 3 else f"Movie {m}",
            "adult": "Y" if m % 11 == 0 else "N",
            "useyn": "N" if m == 40 else "Y",
            "regtime": STAMP,
            "series_id": 7 if m % 7 == 0 else (-3 if m == 5 else None),
            "release_date": date(1990 + m % 30, 1 + m % 12, 1) if m % 4 else None,
            "rating_count": m * 3,
            "genres": ["Comedy|Drama", "drama", "", None, "Action|Comedy|Horror"][m % 5],
        }
        for m in range(1, 12_001, 97)  # more rows than one read, ids not contiguous
    ]
    cat.upsert_movies(rows)
    yield cat
    cat.close()


def test_facts_are_columns_equal_to_the_rows(catalog: Catalog) -> None:
    facts = catalog.movie_facts()
    rows = [r for r in (catalog.get_movie(m) for m in range(1, 12_001, 97)) if r is not None and r["useyn"] == "Y"]
    assert facts.movie_ids == [r["movie_id"] for r in rows]
    assert facts.series_ids == [r["series_id"] for r in rows]
    assert facts.release_dates == [r["release_date"] for r in rows]
    assert facts.rating_counts == [r["rating_count"] for r in rows]
    assert facts.adult == [r["adult"] == "Y" for r in rows]
    assert facts.genres == [r["genres"] or "" for r in rows]
    assert facts.titles.lookup([1, 98, 40, 99_999]) == {1: "영화 1", 98: "영화 98"}  # 40 is hidden
    same = MovieFacts(
        facts.movie_ids, facts.series_ids, facts.release_dates, facts.rating_counts, facts.adult, facts.genres
    )
    for column in ("ids", "series", "released", "counts", "is_adult", "genre_codes"):
        assert getattr(same, column).tolist() == getattr(facts, column).tolist()
    assert same.genre_texts == facts.genre_texts


def test_item_facts_from_columns_filter_as_from_lists(catalog: Catalog) -> None:
    facts = catalog.movie_facts()
    columns, lists = ItemFacts.of(facts), ItemFacts(facts.movie_ids, facts.genres, facts.adult)
    assert columns.genres == lists.genres == ["Action", "Comedy", "Horror", "drama"]  # the first movie's spelling
    ids = facts.movie_ids
    for rules in (Filter(), Filter.of(include_adult=False), Filter.of([98], "DRAMA", False), Filter.of(genre="x")):
        one, other, many = columns.predicate(rules), lists.predicate(rules), columns.allows(rules)
        assert (one is None) == (other is None) == (many is None)
        if one is not None and other is not None and many is not None:
            wanted = [m for m in ids if other(m)]
            assert [m for m in ids if one(m)] == wanted
            assert np.asarray(ids)[many(np.asarray(ids))].tolist() == wanted
    rng, again = np.random.default_rng(3), np.random.default_rng(3)
    assert columns.sample(["comedy"], 5, include_adult=False, rng=rng) == lists.sample(
        ["comedy"], 5, include_adult=False, rng=again
    )
    assert 98 in columns and 40 not in columns and columns.unknown([40, 98, 40]) == [40]


@pytest.mark.parametrize("ids", [[5, 3, 9, 1], [10**12, 3, 7]])  # dense; too sparse for a byte per id
def test_movie_sets_and_id_index(ids: list[int]) -> None:
    members = MovieSet(np.asarray(ids))
    assert all(m in members for m in ids) and 2 not in members and -1 not in members and "3" not in members
    assert members.members([*ids, 2, -1, 0, 10**12 + 1, np.int64(3)]) == [True] * len(ids) + [False] * 4 + [True]
    index = IdIndex(np.asarray(ids))
    assert index.positions([*ids, 2]).tolist() == [*range(len(ids)), -1]
    assert [index.get(m) for m in ids] == list(range(len(ids))) and index.get(2) is None and 2 not in index


def test_counts_and_titles_are_arrays() -> None:
    counts = Counts({"9": 4, 3: 1, 5: 0}, cutoff=7).counts
    assert dict(counts.items()) == {3: 1, 5: 0, 9: 4} and counts[9] == 4 and 4 not in counts and len(counts) == 3
    titles = Titles.of({2: "둘", 1: "one"})
    assert titles.lookup([2, 1, 3]) == {2: "둘", 1: "one"} and Titles.of({}).lookup([1]) == {}


def test_block_fusion_equals_fuse_to_the_bit() -> None:
    rng = np.random.default_rng(23)
    weights = {"a": 1.0, "b": 0.35, "c": 0.7}
    depth, constant, k = 8, 3.0, 6
    banned = {4, 17}
    queries = list(range(1, 201))
    lists = []
    for _ in queries:
        per_query = {}
        for name in weights:
            n = int(rng.integers(0, 14))
            ids = rng.integers(1, 30, size=n).tolist()  # repeats, the query itself and banned movies among them
            per_query[name] = [(int(m), float(rng.random())) for m in ids]
        lists.append(per_query)
    block = fuse_block(
        lists,
        weights,
        queries,
        depth=depth,
        rank_constant=constant,
        allowed=lambda ids: ~np.isin(ids, list(banned)),
        k=k,
    )
    for i, (q, per_query) in enumerate(zip(queries, lists)):
        fused = fuse(
            per_query,
            weights,
            None,
            depth=depth,
            rank_constant=constant,
            keep=lambda m: m not in banned,
            limit=k,
            seen={q},
        )
        expected = [(m, score, max(parts, key=parts.__getitem__)) for m, score, parts in fused]
        got = [(r.movie_id, r.score, r.source) for r in block.row(i)]
        assert got == expected  # scores compared with ==: the same floats, summed in the same order
        assert (block.ids[i, len(got) :] == PAD).all()
