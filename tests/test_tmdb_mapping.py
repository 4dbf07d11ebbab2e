"""TMDB records -> catalog rows, real series replacing inferred ones, and the dump importers."""

from __future__ import annotations

import json
import pickle
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from pipelines.catalog.load import load_catalog
from pipelines.embeddings.texts import content_text
from pipelines.embeddings.vectors import build_vectors
from pipelines.tmdb.apply import apply_records
from pipelines.tmdb.mapping import (
    DumpError,
    map_movie,
    parse_collection_text,
    read_dump,
)
from services.stores.build_state import BuildState
from services.stores.catalog import Catalog, movie_table, series_table
from services.stores.embedding_cache import EmbeddingCache
from services.stores.vectors import CollectionInfo
from tests.support.fake_tmdb import TOY_STORY_SERIES, toy_story_collection, toy_story_records
from tests.support.tmdb_data import movielens_movies, write_kaggle_csv

RECORDS = toy_story_records()


@pytest.fixture
def movies() -> pd.DataFrame:
    return movielens_movies()


@pytest.fixture
def catalog(tmp_path: Path, movies: pd.DataFrame) -> Catalog:
    cat = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    ratings = pd.DataFrame({"movieId": [1, 1, 2, 858, 3114], "rating": [4.0, 5.0, 3.0, 5.0, 4.0]})
    load_catalog(cat, movies, ratings)
    yield cat
    cat.close()


def snapshot(catalog: Catalog) -> tuple[list, list]:
    with catalog.engine.connect() as conn:
        movies = [tuple(r) for r in conn.execute(select(movie_table).order_by(movie_table.c.movie_id))]
        series = [tuple(r) for r in conn.execute(select(series_table).order_by(series_table.c.series_id))]
    return movies, series


# ---- one record ---------------------------------------------------------------------------------


def test_korean_record_maps_to_korean_fields() -> None:
    mapped = map_movie(RECORDS[862])
    assert mapped.tmdb_id == 862
    assert mapped.fields["movie_title"] == "토이 스토리"
    assert mapped.fields["original_title"] == "Toy Story"
    assert mapped.fields["overview"] == "우디는 앤디가 가장 아끼는 카우보이 인형이다."
    assert mapped.fields["overview_language"] == "ko"
    assert mapped.fields["tagline"] == "장난감들의 신나는 모험"
    assert mapped.fields["release_date"] == date(1995, 10, 30)
    assert mapped.fields["runtime"] == 81
    assert mapped.fields["imdb_id"] == "tt0114709"
    assert mapped.fields["adult"] == "N"
    assert mapped.fields["original_language"] == "en"
    assert mapped.fields["poster_path"] == "/uXDfjJbdP4ijW5hWSBrPrlKpxab.jpg"
    assert (mapped.series_id, mapped.series_title) == TOY_STORY_SERIES


def test_empty_korean_overview_falls_back_to_english_translation() -> None:
    mapped = map_movie(RECORDS[863])
    assert mapped.fields["movie_title"] == "토이 스토리 2"
    assert mapped.fields["overview"].startswith("Andy heads off to Cowboy Camp")
    assert mapped.fields["overview_language"] == "en"
    assert mapped.fields["tagline"] == "The toys are back!"


def test_no_korean_title_falls_back_to_original_title() -> None:
    record = dict(RECORDS[949], original_title="Heat (original)")
    mapped = map_movie(record)
    # TMDB's top-level title is the English one here, not Korean: the original title wins
    assert mapped.fields["movie_title"] == "Heat (original)"
    assert mapped.fields["overview_language"] == "en"
    assert mapped.series_id is None


def test_hangul_top_level_text_counts_as_korean_without_a_ko_translation() -> None:
    record = dict(RECORDS[949], title="히트", overview="LA의 전설적인 강도 닐 맥컬리.")
    mapped = map_movie(record)
    assert mapped.fields["movie_title"] == "히트"
    assert (mapped.fields["overview"], mapped.fields["overview_language"]) == ("LA의 전설적인 강도 닐 맥컬리.", "ko")


def test_record_without_translations_trusts_the_top_level_language() -> None:
    record = {
        "id": 5,
        "title": "포 룸",
        "original_title": "Four Rooms",
        "overview": "호텔의 신년 전야.",
        "adult": True,
        "runtime": 0,
        "release_date": "",
    }
    mapped = map_movie(record, language="ko")
    assert mapped.fields["movie_title"] == "포 룸"
    assert mapped.fields["overview_language"] == "ko"
    assert mapped.fields["adult"] == "Y"
    assert mapped.fields["runtime"] is None and mapped.fields["release_date"] is None
    english = map_movie({**record, "title": "Four Rooms", "overview": "New Year's Eve."}, language="en")
    assert english.fields["movie_title"] == "Four Rooms"
    assert english.fields["overview_language"] == "en"


def test_collection_text_is_parsed_as_json_or_literal_never_evaluated(tmp_path: Path) -> None:
    assert parse_collection_text('{"id": 10, "name": "스타워즈 시리즈"}') == {"id": 10, "name": "스타워즈 시리즈"}
    assert parse_collection_text("{'id': 10194, 'name': 'Toy Story Collection', 'poster_path': None}")["id"] == 10194
    marker = tmp_path / "pwned"
    assert parse_collection_text(f"__import__('pathlib').Path({str(marker)!r}).touch()") is None
    assert not marker.exists()
    assert parse_collection_text("") is None and parse_collection_text("nan") is None
    assert parse_collection_text("[1, 2]") is None


# ---- into the catalog ---------------------------------------------------------------------------


def test_apply_writes_korean_metadata_and_real_series_replace_inferred(catalog: Catalog, movies: pd.DataFrame) -> None:
    inferred_before = catalog.series_ids(inferred=True)
    toy_story_inferred = catalog.get_movie(1)["series_id"]
    godfather_inferred = catalog.get_movie(858)["series_id"]
    assert toy_story_inferred is not None and toy_story_inferred < 0
    assert godfather_inferred is not None and godfather_inferred < 0
    assert set(inferred_before) == {toy_story_inferred, godfather_inferred}

    result = apply_records(catalog, RECORDS.values(), movies=movies)

    assert result.records == 5 and result.movies == 5 and result.unmatched == 0
    assert result.series == 1 and result.english_overviews == 2  # Toy Story 2 and Heat
    toy = catalog.get_movie(1)
    assert toy["movie_title"] == "토이 스토리"
    assert toy["series_id"] == 10194 and toy["series_title"] == "토이 스토리 시리즈"
    assert toy["series_inferred"] == "N"
    assert toy["overview_language"] == "ko" and toy["tagline"] == "장난감들의 신나는 모험"
    assert toy["release_date"] == date(1995, 10, 30) and toy["runtime"] == 81
    assert toy["genres"].startswith("Adventure|Animation")  # MovieLens genres stay
    assert toy["rating_count"] == 2  # rating statistics untouched
    toy2 = catalog.get_movie(3114)
    assert toy2["overview_language"] == "en" and toy2["movie_title"] == "토이 스토리 2"
    assert [m["movie_id"] for m in catalog.series_members(10194)] == [78499, 3114, 1]
    # the inferred Toy Story series is gone, the inferred Godfather series stays
    assert toy_story_inferred not in catalog.series_ids()
    assert catalog.series_ids(inferred=True) == [godfather_inferred]
    assert catalog.get_movie(1221)["series_id"] == godfather_inferred
    assert catalog.series_ids(inferred=False) == [10194]
    # untouched movies keep their MovieLens data
    assert catalog.get_movie(99999)["movie_title"] == "No Links"
    assert catalog.get_movie(858)["movie_title"] == "Godfather, The"


def test_apply_twice_gives_the_same_catalog(catalog: Catalog, movies: pd.DataFrame) -> None:
    apply_records(catalog, RECORDS.values(), movies=movies, collections=[toy_story_collection()])
    first = snapshot(catalog)
    again = apply_records(catalog, RECORDS.values(), movies=movies, collections=[toy_story_collection()])
    assert snapshot(catalog) == first
    assert again.inferred_series is None  # nothing about real series changed: no re-inference


def test_catalog_step_after_tmdb_keeps_real_series_and_korean_text(catalog: Catalog, movies: pd.DataFrame) -> None:
    apply_records(catalog, RECORDS.values(), movies=movies)
    ratings = pd.DataFrame({"movieId": [1, 2], "rating": [5.0, 1.0]})
    load_catalog(catalog, movies, ratings)  # what `nextwatch catalog --force` does later
    toy = catalog.get_movie(1)
    assert toy["movie_title"] == "토이 스토리" and toy["series_id"] == 10194
    assert toy["overview"].startswith("우디는")
    assert len(catalog.series_ids(inferred=True)) == 1


def test_collections_complete_members_and_give_korean_names(catalog: Catalog, movies: pd.DataFrame) -> None:
    # only Toy Story 1 fetched; the collection record names 2 and 3 as members
    renamed = dict(toy_story_collection(), name="토이 스토리 컬렉션")
    apply_records(catalog, [RECORDS[862]], movies=movies, collections=[renamed])
    assert [m["movie_id"] for m in catalog.series_members(10194)] == [78499, 3114, 1]
    assert catalog.get_movie(3114)["series_title"] == "토이 스토리 컬렉션"
    assert catalog.get_movie(3114)["movie_title"] == "Toy Story 2"  # no record: MovieLens title stays
    assert len(catalog.series_ids(inferred=True)) == 1


def test_apply_without_movielens_titles_drops_orphaned_inferred_series(catalog: Catalog) -> None:
    godfather = catalog.get_movie(858)["series_id"]
    apply_records(catalog, RECORDS.values())
    assert catalog.series_ids(inferred=True) == [godfather]
    assert catalog.series_members(10194)


def test_a_korean_overview_is_what_gets_embedded(catalog: Catalog, movies: pd.DataFrame, tmp_path: Path) -> None:
    class Backend:
        name, model, dim = "fake", "fake-model", 4

        def __init__(self) -> None:
            self.texts: list[str] = []

        def embed_passages(self, texts):
            self.texts.extend(texts)
            return np.ones((len(texts), self.dim), np.float32) / 2

    class Store:
        def __init__(self) -> None:
            self.points: dict[int, np.ndarray] = {}
            self.spec: tuple[int, str] | None = None

        def info(self):
            return None if self.spec is None else CollectionInfo("c", self.spec[0], len(self.points), self.spec[1])

        def recreate(self, dim, model):
            self.points, self.spec = {}, (dim, model)

        def ensure(self, dim, model):
            self.spec = (dim, model)

        def upsert(self, ids, vectors, payloads):
            self.points.update(zip(ids, vectors))

        def finalize(self):
            pass

        def ids(self):
            return np.array(sorted(self.points), dtype=np.int64)

    backend, store = Backend(), Store()
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    state = BuildState(tmp_path)
    try:
        build_vectors(catalog, store, backend, cache, state, progress=False)
        assert build_vectors(catalog, store, backend, cache, state, progress=False).upserted is False
        apply_records(catalog, RECORDS.values(), movies=movies)
        texts = {r["movie_id"]: content_text(r) for r in catalog.content_rows()}
        assert texts[1] == "우디는 앤디가 가장 아끼는 카우보이 인형이다."
        backend.texts.clear()
        result = build_vectors(catalog, store, backend, cache, state, progress=False)
    finally:
        cache.close()
    assert result.upserted and result.newly_embedded == 5
    assert "우디는 앤디가 가장 아끼는 카우보이 인형이다." in backend.texts


# ---- dumps --------------------------------------------------------------------------------------


def test_kaggle_csv_import_is_idempotent(catalog: Catalog, movies: pd.DataFrame, tmp_path: Path) -> None:
    dump = read_dump(write_kaggle_csv(tmp_path / "movies_metadata.csv"))
    assert dump.format == "csv" and dump.language == "en"
    result = apply_records(catalog, dump.ok_payloads(), language=dump.language, movies=movies)
    assert dump.skipped == 1 and dump.records == 3
    assert result.movies == 3 and result.series == 1 and result.english_overviews == 3
    first = snapshot(catalog)
    toy = catalog.get_movie(1)
    assert toy["movie_title"] == "Toy Story" and toy["overview_language"] == "en"
    assert toy["series_id"] == 10194 and toy["series_title"] == "Toy Story Collection"
    assert toy["runtime"] == 81 and toy["adult"] == "N"
    assert catalog.get_movie(2)["series_id"] is None  # unparsable collection: no series
    apply_records(catalog, read_dump(tmp_path / "movies_metadata.csv").ok_payloads(), language="en", movies=movies)
    assert snapshot(catalog) == first


def test_jsonl_checkpoint_import(catalog: Catalog, movies: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "movies.jsonl"
    lines = [
        {"tmdb_id": t, "status": "ok", "fetched_at": "2026-01-01T00:00:00+00:00", "language": "ko-KR", "data": r}
        for t, r in RECORDS.items()
    ]
    lines.append({"tmdb_id": 238, "status": "not_found", "fetched_at": "2026-01-01T00:00:00+00:00"})
    text = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines) + '{"tmdb_id": 240, "sta'
    path.write_text(text, encoding="utf-8")
    dump = read_dump(path)
    assert dump.format == "jsonl" and dump.language == "ko"
    assert len(list(dump.ok_payloads())) == 5 and dump.records == 6 and dump.skipped == 1
    apply_records(catalog, dump.ok_payloads(), language=dump.language, movies=movies)
    first = snapshot(catalog)
    assert catalog.get_movie(1)["movie_title"] == "토이 스토리"
    apply_records(catalog, read_dump(path).ok_payloads(), language="ko", movies=movies)
    assert snapshot(catalog) == first


def test_a_dump_in_another_language_than_asked_is_refused(catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "movies.jsonl"
    path.write_text(
        json.dumps({"tmdb_id": 862, "status": "ok", "language": "ko-KR", "data": RECORDS[862]}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    before = snapshot(catalog)
    with pytest.raises(DumpError, match="ko"):
        apply_records(catalog, read_dump(path, "en").ok_payloads(), language="en")
    assert snapshot(catalog) == before  # nothing written


def test_pickles_are_refused_without_being_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "tmdb_movie_info_kr.pkl"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(DumpError, match="pickle"):
        read_dump(path)
    assert not marker.exists()
    with pytest.raises(DumpError, match="unknown dump format"):
        read_dump(tmp_path / "dump.parquet")
