"""Data dirs for the TMDB tests: a MovieLens-shaped movies frame, its catalog, the environment of a fast run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from pipelines.catalog.load import load_catalog
from services.stores.catalog import Catalog
from tests.support.fake_tmdb import FakeTmdb

FIRST_TMDB_ID = 100_000


def _word(n: int) -> str:
    """A made-up name per number: Kabo, Kabu, ... (no digits, so titles read as series by their number)."""
    syllables = ("ka", "bo", "ri", "mu", "te", "so", "na", "di")
    parts = []
    for _ in range(4):
        n, r = divmod(n, len(syllables))
        parts.append(syllables[r])
    return "".join(parts).capitalize()


def many_movies(count: int) -> pd.DataFrame:
    """`count` movies as `pipelines.ingest.movielens` ingests them, in series of three ("Kabo", "Kabo 2", "Kabo 3")."""
    ids = list(range(1, count + 1))
    titles = [_word((i - 1) // 3) + ("" if (i - 1) % 3 == 0 else f" {(i - 1) % 3 + 1}") for i in ids]
    frame = pd.DataFrame(
        {
            "movieId": ids,
            "title": titles,
            "year": [1990 + (i - 1) % 3 * 3 for i in ids],
            "genres": "Drama",
            "tmdbId": [FIRST_TMDB_ID + i for i in ids],
            "imdbId": None,
        }
    )
    frame["year"] = frame["year"].astype("Int16")
    frame["tmdbId"] = frame["tmdbId"].astype("Int64")
    frame["imdbId"] = frame["imdbId"].astype("string")
    return frame


def make_data_dir(data: Path, movies: pd.DataFrame) -> Path:
    """A data dir with movies.parquet and the catalog loaded from it (as `nextwatch ingest` + `catalog`)."""
    data.mkdir(parents=True)
    movies.to_parquet(data / "movies.parquet")
    catalog = Catalog(f"sqlite:///{data / 'catalog.sqlite'}")
    try:
        load_catalog(catalog, movies, pd.DataFrame({"movieId": movies["movieId"].iloc[:2], "rating": [4.0, 5.0]}))
    finally:
        catalog.close()
    return data


def fast_env(data: Path, server: FakeTmdb) -> dict[str, str]:
    """Settings pointing at `data` and the fake server, with a fast rate limit and tiny backoff."""
    return {
        "NEXTWATCH_DATA_DIR": str(data),
        "NEXTWATCH_TMDB_BASE_URL": server.base_url,
        "NEXTWATCH_TMDB_RATE_LIMIT": "1000",
        "NEXTWATCH_TMDB_BACKOFF_BASE": "0.01",
        "NEXTWATCH_TMDB_BACKOFF_MAX": "0.05",
        "NEXTWATCH_TMDB_MAX_RETRIES": "2",
    }


def cli_env(data: Path, server: FakeTmdb | None = None, **settings: str) -> dict[str, str]:
    """The environment of a `python -m pipelines.cli` child: this worktree's code, `data`, no real credentials."""
    # the test session's learned-model settings (tests/conftest.py) stay: short and without a budget stop;
    # and its one-process servers
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TMDB_", "NEXTWATCH_")) or k.startswith(("NEXTWATCH_LEARNED_", "NEXTWATCH_WORKERS"))
    }
    env.update(
        {
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            "OPENBLAS_NUM_THREADS": "1",
            "NEXTWATCH_DATA_DIR": str(data),
        }
    )
    if server is not None:
        env.update(fast_env(data, server))
    env.update(settings)
    return env


def nextwatch(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """Start the real CLI (`nextwatch ...`) as a child process, stdout and stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args],
        env=env,
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def movielens_movies() -> pd.DataFrame:
    """MovieLens rows as `pipelines.ingest.movielens` ingests them (title without the year)."""
    rows = [
        (1, "Toy Story", 1995, "Adventure|Animation|Children|Comedy|Fantasy", 862, "tt0114709"),
        (2, "Jumanji", 1995, "Adventure|Children|Fantasy", 8844, "tt0113497"),
        (6, "Heat", 1995, "Action|Crime|Thriller", 949, "tt0113277"),
        (858, "Godfather, The", 1972, "Crime|Drama", 238, "tt0068646"),
        (1221, "Godfather: Part II, The", 1974, "Crime|Drama", 240, "tt0071562"),
        (3114, "Toy Story 2", 1999, "Adventure|Animation|Children|Comedy|Fantasy", 863, "tt0120363"),
        (78499, "Toy Story 3", 2010, "Adventure|Animation|Children|Comedy|Fantasy|IMAX", 10193, "tt0435761"),
        (99999, "No Links", 2001, "Drama", None, None),
    ]
    frame = pd.DataFrame(rows, columns=["movieId", "title", "year", "genres", "tmdbId", "imdbId"])
    frame["year"] = frame["year"].astype("Int16")
    frame["tmdbId"] = frame["tmdbId"].astype("Int64")
    frame["imdbId"] = frame["imdbId"].astype("string")
    return frame


def write_kaggle_csv(path: Path) -> Path:
    rows = [
        {
            "id": "862",
            "title": "Toy Story",
            "original_title": "Toy Story",
            "original_language": "en",
            "overview": "Led by Woody, Andy's toys live happily in his room.",
            "tagline": "",
            "release_date": "1995-10-30",
            "runtime": "81.0",
            "adult": "False",
            "imdb_id": "tt0114709",
            "poster_path": "/rhIRbceoE9lR4veEXuwCC2wARtG.jpg",
            "belongs_to_collection": "{'id': 10194, 'name': 'Toy Story Collection', 'poster_path': "
            "'/7G9915LfUQ2lVfwMEEhDsn3kT4B.jpg', 'backdrop_path': None}",
            "genres": "[{'id': 16, 'name': 'Animation'}]",
        },
        {
            "id": "863",
            "title": "Toy Story 2",
            "original_title": "Toy Story 2",
            "original_language": "en",
            "overview": "Andy heads off to Cowboy Camp.",
            "tagline": "The toys are back!",
            "release_date": "1999-10-30",
            "runtime": "92.0",
            "adult": "False",
            "imdb_id": "tt0120363",
            "poster_path": "",
            "belongs_to_collection": '{"id": 10194, "name": "Toy Story Collection"}',
            "genres": "",
        },
        {
            "id": "8844",
            "title": "Jumanji",
            "original_title": "Jumanji",
            "original_language": "en",
            "overview": "When siblings Judy and Peter discover an enchanted board game...",
            "tagline": "",
            "release_date": "1995-12-15",
            "runtime": "104.0",
            "adult": "False",
            "imdb_id": "tt0113497",
            "poster_path": "",
            "belongs_to_collection": "{broken",
            "genres": "",
        },
        {
            "id": "1997-08-20",
            "title": "a shifted row of the public dump",
            "original_title": "",
            "original_language": "",
            "overview": "",
            "tagline": "",
            "release_date": "",
            "runtime": "",
            "adult": " - Written by Ørnås",
            "imdb_id": "",
            "poster_path": "",
            "belongs_to_collection": "",
            "genres": "",
        },
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
