"""MovieLens 100K in its own layout (u.data, u.item, u.genre), and the values every ingest refuses."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest

from pipelines.ingest.movielens import IngestError, ingest

GENRES = (
    "unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\nCrime|6\nDocumentary|7\nDrama|8\n"
    "Fantasy|9\nFilm-Noir|10\nHorror|11\nMusical|12\nMystery|13\nRomance|14\nSci-Fi|15\nThriller|16\nWar|17\n"
    "Western|18\n\n"
)
NAMES = [line.split("|")[0] for line in GENRES.split()]


def item(movie_id: int, title: str, released: str, *genres: str) -> str:
    flags = "|".join("1" if name in genres else "0" for name in NAMES)
    return f"{movie_id}|{title}|{released}||http://us.imdb.com/M/title-exact?x|{flags}\n"


U_ITEM = (
    item(1, "Toy Story (1995)", "01-Jan-1995", "Animation", "Children's", "Comedy")
    + item(302, "L.A. Confidential (1997)", "01-Jan-1997", "Crime", "Film-Noir", "Mystery", "Thriller")
    + item(377, "Misérables, Les (1995)", "01-Jan-1995", "Drama", "Musical")
    + item(267, "unknown", "", "unknown")
    + item(1682, "Scream of Stone (Schrei aus Stein)", "08-Mar-1996", "Drama")
)
U_DATA = "196\t302\t3\t881250949\n186\t1\t3\t891717742\n22\t377\t1\t878887116\n196\t1\t5\t881250950\n22\t267\t4\t1\n"


def write_100k(root: Path, u_data: str = U_DATA) -> Path:
    """A hand-made ml-100k folder as GroupLens ships it: u.item in latin-1, u.genre, u.data, and the rest."""
    root.mkdir(parents=True)
    (root / "u.data").write_text(u_data, encoding="ascii")
    (root / "u.item").write_bytes(U_ITEM.encode("latin-1"))
    (root / "u.genre").write_text(GENRES, encoding="ascii")
    (root / "u.user").write_text("1|24|M|technician|85711\n", encoding="ascii")
    (root / "u1.base").write_text(U_DATA, encoding="ascii")
    return root


def assert_100k(result_dir: Path, ratings: int, movies: int) -> None:
    movies_df = pd.read_parquet(result_dir / "movies.parquet").set_index("movieId")
    assert len(movies_df) == movies
    assert movies_df.loc[377, "title"] == "Misérables, Les"  # latin-1 decoded, stored as UTF-8
    assert movies_df.loc[377, "ml_title"] == "Misérables, Les (1995)"
    assert (movies_df.loc[377, "year"], movies_df.loc[377, "genres"]) == (1995, "Drama|Musical")
    assert movies_df.loc[302, "genres"] == "Crime|Film-Noir|Mystery|Thriller"
    assert movies_df.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert movies_df.loc[267, "genres"] == ""  # "unknown": (no genres listed), which movies.parquet keeps as ""
    assert movies_df.loc[1682, "year"] == 1996  # no year in the title: the release date's
    rated = pd.read_parquet(result_dir / "ratings.parquet")
    assert len(rated) == ratings
    assert rated.iloc[0].tolist() == [196, 302, 3.0, 881250949]


def test_an_ml_100k_folder_is_ingested_as_it_is(tmp_path: Path) -> None:
    root = write_100k(tmp_path / "ml-100k")
    result = ingest(str(root), tmp_path / "out", progress=False)
    assert (result.ratings, result.users, result.movies) == (5, 3, 5)
    assert "ml-100k release" in result.source
    assert_100k(tmp_path / "out", 5, 5)
    assert (tmp_path / "out" / "movies.parquet").read_bytes().find("Misérables".encode()) >= 0
    ingest(str(root / "u.data"), tmp_path / "from-file", progress=False)  # the ratings file itself
    assert_100k(tmp_path / "from-file", 5, 5)


def test_an_ml_100k_zip_is_ingested_as_it_is(tmp_path: Path) -> None:
    root = write_100k(tmp_path / "src" / "ml-100k")
    zipped = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for path in sorted(root.iterdir()):
            archive.write(path, f"ml-100k/{path.name}")
    result = ingest(str(zipped), tmp_path / "out", progress=False)
    assert result.ratings == 5
    assert_100k(tmp_path / "out", 5, 5)


def test_an_ml_100k_folder_without_u_genre_names_it(tmp_path: Path) -> None:
    root = write_100k(tmp_path / "ml-100k")
    (root / "u.genre").unlink()
    with pytest.raises(IngestError, match=r"u\.genre is missing"):
        ingest(str(root), tmp_path / "out", progress=False)


RATINGS_HEADER = "userId,movieId,rating,timestamp\n"


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ("1,1,4.0,1\n2,1,9.5,2\n", "line 3: rating 9.5 is out of range (MovieLens ratings lie in 0.5..5)"),
        ("1,1,4.0,1\n1,-1,4.0,2\n", "line 3: movieId -1 is out of range (ids are positive)"),
        ("1,1,4.0,1\n0,1,4.0,2\n", "line 3: userId 0 is out of range"),
        ("1,1,0.0,1\n", "line 2: rating 0 is out of range"),
    ],
)
def test_out_of_range_ratings_and_ids_are_refused_naming_the_row(tmp_path: Path, rows: str, needle: str) -> None:
    source = tmp_path / "ml"
    source.mkdir()
    (source / "ratings.csv").write_text(RATINGS_HEADER + rows)
    (source / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Comedy\n")
    with pytest.raises(IngestError) as caught:
        ingest(str(source), tmp_path / "out", progress=False)
    assert f"{source / 'ratings.csv'}, {needle}" in str(caught.value)
    assert not (tmp_path / "out" / "ratings.parquet").exists()


def test_out_of_range_values_in_u_data_name_its_line(tmp_path: Path) -> None:
    root = write_100k(tmp_path / "ml-100k", U_DATA + "5\t1\t9.5\t3\n")
    with pytest.raises(IngestError, match=r"u\.data, line 6: rating 9\.5 is out of range"):
        ingest(str(root), tmp_path / "out", progress=False)
