"""Synthetic MovieLens-32M-shaped data: exact sizes, GroupLens formats, determinism and series structure."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.synth.synth import ML_GENRES, NO_GENRES, SCALES, ScaleSpec, _build_catalog, synthesize
from pipelines.tmdb.mapping import CSV_COLUMNS

FILES = ("ratings", "movies", "links", "tmdb_metadata")
TMDB_COLUMNS = list(CSV_COLUMNS)  # what `nextwatch tmdb import` reads


@pytest.fixture(scope="module")
def release_100k(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return synthesize("100k", tmp_path_factory.mktemp("synth-100k"), seed=7, progress=False)


@pytest.fixture(scope="module")
def frames(release_100k: dict[str, Path]) -> dict[str, pd.DataFrame]:
    return {
        "ratings": pd.read_csv(release_100k["ratings"]),
        "movies": pd.read_csv(release_100k["movies"]),
        "links": pd.read_csv(release_100k["links"], dtype={"imdbId": str}),
        "tmdb": pd.read_csv(release_100k["tmdb_metadata"], keep_default_na=False),
    }


def _digest(paths: dict[str, Path]) -> dict[str, str]:
    return {k: hashlib.sha256(Path(p).read_bytes()).hexdigest() for k, p in paths.items()}


def test_scales() -> None:
    assert SCALES["32m"] == ScaleSpec(users=200_948, movies=87_585, ratings=32_000_204)
    assert SCALES["100k"] == ScaleSpec(users=610, movies=9_742, ratings=100_836)
    assert SCALES["1m"].ratings == 1_000_209 and SCALES["1m"].users == 6_040
    with pytest.raises(ValueError):
        synthesize("nope", Path("/nonexistent"))


def test_exact_counts_100k(release_100k: dict[str, Path], frames: dict[str, pd.DataFrame]) -> None:
    assert set(release_100k) == set(FILES)
    assert [p.name for p in release_100k.values()] == ["ratings.csv", "movies.csv", "links.csv", "tmdb_metadata.csv"]
    r, m = frames["ratings"], frames["movies"]
    spec = SCALES["100k"]
    assert len(r) == spec.ratings
    assert r["userId"].nunique() == spec.users
    assert sorted(r["userId"].unique()) == list(range(1, spec.users + 1))
    assert r["movieId"].nunique() == spec.movies == len(m)
    assert set(r["movieId"]) == set(m["movieId"])  # every movie rated, no unknown ids
    assert not r.duplicated(["userId", "movieId"]).any()  # a movie once per user


def test_file_formats(release_100k: dict[str, Path], frames: dict[str, pd.DataFrame]) -> None:
    raw = release_100k["ratings"].read_text().splitlines()
    assert raw[0] == "userId,movieId,rating,timestamp"
    assert all(re.fullmatch(r"\d+,\d+,[0-5]\.[05],\d{9,10}", line) for line in raw[1:2000])
    assert release_100k["movies"].read_text().splitlines()[0] == "movieId,title,genres"
    assert release_100k["links"].read_text().splitlines()[0] == "movieId,imdbId,tmdbId"
    assert release_100k["tmdb_metadata"].read_text().splitlines()[0] == ",".join(TMDB_COLUMNS)

    r, m, links, tmdb = frames["ratings"], frames["movies"], frames["links"], frames["tmdb"]
    assert r.dtypes.to_dict() == {"userId": np.int64, "movieId": np.int64, "rating": np.float64, "timestamp": np.int64}
    # movies: "Title (YYYY)", MovieLens genres, ids sorted and not contiguous
    assert m["title"].str.match(r"^.+ \((1[89]|20)\d\d\)$").all()
    assert m["title"].str.contains(", The (", regex=False).any()  # trailing article as in MovieLens
    assert release_100k["movies"].read_text().count('"') > 0  # titles with commas are quoted
    allowed = set(ML_GENRES) | {NO_GENRES}
    assert all(set(g.split("|")) <= allowed for g in m["genres"])
    assert m["movieId"].is_monotonic_increasing and m["movieId"].max() > 3 * len(m)
    # links: same movies, imdbId zero-padded to 7 digits, a few tmdbIds missing
    assert links["movieId"].tolist() == m["movieId"].tolist()
    assert links["imdbId"].str.fullmatch(r"\d{7,8}").all() and links["imdbId"].str.startswith("0").any()
    assert links["imdbId"].is_unique
    missing = links["tmdbId"].isna().sum()
    assert 0 <= missing < 0.01 * len(links)
    assert links["tmdbId"].dropna().astype(np.int64).is_unique
    # tmdb metadata: one row per known tmdbId, Kaggle-like columns
    assert list(tmdb.columns) == TMDB_COLUMNS
    assert set(tmdb["id"]) == set(links["tmdbId"].dropna().astype(np.int64))
    assert tmdb["title"].str.contains(r"[가-힣]").mean() > 0.99
    assert tmdb["overview"].str.contains(r"[가-힣]").all()
    assert tmdb["release_date"].str.fullmatch(r"\d{4}-\d\d-\d\d").all()
    assert tmdb["adult"].dtype == bool and not tmdb["adult"].all()  # written as True/False
    assert tmdb["imdb_id"].str.fullmatch(r"tt\d{7,8}").all()
    assert tmdb["poster_path"].str.fullmatch(r"/[A-Za-z0-9]{27}\.jpg").all()
    assert tmdb["runtime"].astype(int).between(20, 240).all()
    for g in tmdb["genres"].head(500):
        assert all(set(x) == {"id", "name"} for x in json.loads(g))
    colls = [json.loads(c) for c in tmdb["belongs_to_collection"] if c]
    assert colls and all(set(c) == {"id", "name", "poster_path", "backdrop_path"} for c in colls)
    assert all(c["name"].endswith(" 시리즈") for c in colls)


def test_rating_values_users_and_time(frames: dict[str, pd.DataFrame]) -> None:
    r, m = frames["ratings"], frames["movies"]
    assert r["rating"].between(0.5, 5.0).all()
    assert ((r["rating"] * 2) % 1 == 0).all()
    assert set(r["rating"]) == {x / 2 for x in range(1, 11)}
    assert 3.3 < r["rating"].mean() < 3.8
    assert r["rating"].value_counts().idxmax() == 4.0
    per_user = r["userId"].value_counts()
    assert per_user.min() >= 20 and 50 <= per_user.median() <= 130 and per_user.max() > 1000
    # sorted by user, then time; timestamps within 1995-2023; several share a second
    key = r["userId"].to_numpy() * 10**10 + r["timestamp"].to_numpy()
    assert (np.diff(key) >= 0).all()
    tie = np.diff(key) == 0  # equal seconds: ordered by movieId
    assert (np.diff(r["movieId"].to_numpy())[tie] > 0).all()
    assert r["timestamp"].min() >= 789_652_009 and r["timestamp"].max() <= 1_697_164_147
    same = (r["userId"].diff() == 0) & (r["timestamp"].diff() == 0)
    assert 0.03 < same.mean() < 0.3
    # no rating before the movie's release year; half stars only from 2003 on
    year = m.set_index("movieId")["title"].str.extract(r"\((\d{4})\)$")[0].astype(int)
    rated_year = pd.to_datetime(r["timestamp"], unit="s").dt.year.to_numpy()
    assert (rated_year >= year.reindex(r["movieId"]).to_numpy()).all()
    early = r["timestamp"] < 1_045_526_400
    assert ((r.loc[early, "rating"] % 1) == 0).all()
    # heavy-tailed popularity
    counts = r["movieId"].value_counts()
    assert counts.max() > 200 and (counts == 1).mean() > 0.2


def test_deterministic(tmp_path: Path) -> None:
    a = _digest(synthesize("tiny", tmp_path / "a", seed=3, progress=False))
    b = _digest(synthesize("tiny", tmp_path / "b", seed=3, progress=False))
    c = _digest(synthesize("tiny", tmp_path / "c", seed=4, progress=False))
    assert a == b
    assert all(a[k] != c[k] for k in FILES)
    r = pd.read_csv(tmp_path / "a" / "ratings.csv")
    spec = SCALES["tiny"]
    assert (len(r), r["userId"].nunique(), r["movieId"].nunique()) == (spec.ratings, spec.users, spec.movies)


def test_series_members_share_a_collection(frames: dict[str, pd.DataFrame]) -> None:
    cat = _build_catalog(SCALES["100k"], "100k", 7)
    links, tmdb, movies = frames["links"], frames["tmdb"], frames["movies"]
    assert 200 <= len(cat.series_members) <= 600
    tmdb_of = dict(zip(links["movieId"], links["tmdbId"]))
    coll_of = {i: json.loads(c)["id"] for i, c in zip(tmdb["id"], tmdb["belongs_to_collection"]) if c}
    title_of = dict(zip(movies["movieId"], movies["title"]))
    seen = set()
    for members in cat.series_members:
        assert 2 <= len(members) <= 8
        ids = [int(cat.movie_id[i]) for i in members]
        colls = {coll_of[int(tmdb_of[mid])] for mid in ids}  # all in tmdb_metadata, one collection
        assert len(colls) == 1 and not colls & seen
        seen |= colls
        years = [int(cat.year[i]) for i in members]
        assert years == sorted(years) and len(set(years)) == len(years)  # released in order
        assert ids == sorted(ids)
        base = re.sub(r", (The|A|An)$", "", title_of[ids[0]][:-7])
        assert all(title_of[mid].startswith(base) for mid in ids[1:])
    assert len(coll_of) == sum(len(s) for s in cat.series_members)  # only series members have one


def test_series_are_watched_in_order(frames: dict[str, pd.DataFrame]) -> None:
    """Consecutive ratings fall in the same series far more often than chance, mostly as the next one."""
    cat = _build_catalog(SCALES["100k"], "100k", 7)
    series_of = pd.Series(cat.series, index=cat.movie_id)
    pos_of = pd.Series(cat.series_pos, index=cat.movie_id)
    r = frames["ratings"].sort_values(["userId", "timestamp", "movieId"], kind="stable")
    s = series_of.reindex(r["movieId"]).to_numpy()
    p = pos_of.reindex(r["movieId"]).to_numpy()
    same_user = r["userId"].to_numpy()[1:] == r["userId"].to_numpy()[:-1]
    same_series = same_user & (s[1:] >= 0) & (s[1:] == s[:-1])
    observed = same_series.sum() / same_user.sum()
    share = np.bincount(s[s >= 0], minlength=len(cat.series_members)) / len(s)
    chance = float((share**2).sum())
    assert observed > 0.02 and observed > 5 * chance
    in_order = same_series & (p[1:] == p[:-1] + 1)
    assert in_order.sum() > 0.8 * same_series.sum()


def test_titles_let_series_be_inferred(frames: dict[str, pd.DataFrame]) -> None:
    """Most synthetic series are recognisable from MovieLens titles alone, and no single movie joins one."""
    from pipelines.catalog.series_inference import infer_series

    cat = _build_catalog(SCALES["100k"], "100k", 7)
    movies = frames["movies"].assign(year=None)
    inferred = infer_series(movies[["movieId", "title", "year"]])
    truth = {frozenset(int(cat.movie_id[i]) for i in members) for members in cat.series_members}
    found = {frozenset(s.movie_ids) for s in inferred}
    assert len(found & truth) > 0.85 * len(truth)
    assert len(found - truth) <= 0.02 * len(truth)
