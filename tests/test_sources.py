"""The data dir keeps the user's release: builds reuse its source, a new source replaces it, TMDB data stays."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.evaluation.protocol import ratings_fingerprint
from services.api.app import create_app
from services.settings import Settings
from services.stores.catalog import Catalog
from services.stores.generations import resolve_generation
from services.stores.vectors import open_vector_store
from tests.support.data import write_release
from tests.support.fake_tmdb import toy_story_records

TOY_STORY_LINKS = {1: 862, 3114: 863, 78499: 10193}


def my_release(sample: pd.DataFrame, out: Path, top_movies: int) -> Path:
    """A GroupLens CSV release of the sample's most-rated movies, with TMDB links for Toy Story 1-3."""
    out.mkdir(parents=True)
    write_release(sample, out, top_movies)
    movies = pd.read_csv(out / "movies.csv")
    movies["tmdbId"] = movies["movieId"].map(TOY_STORY_LINKS).astype("Int64")
    movies["imdbId"] = None
    movies[["movieId", "imdbId", "tmdbId"]].to_csv(out / "links.csv", index=False)
    return out


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Runs `nextwatch ...` on a fresh data dir (small ALS: the test is about data, not quality)."""
    for name, value in {"DATA_DIR": str(tmp_path / "data"), "ALS_FACTORS": "8", "ALS_ITERATIONS": "3"}.items():
        monkeypatch.setenv(f"NEXTWATCH_{name}", value)
    monkeypatch.delenv("NEXTWATCH_SOURCE", raising=False)

    def run(*args: str) -> str:
        result = CliRunner().invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    return run


def korean_checkpoint(path: Path) -> Path:
    """Our own TMDB checkpoint format (JSON Lines) with the Korean records of Toy Story 1-3."""
    lines = [
        {"tmdb_id": t, "status": "ok", "fetched_at": "2026-01-01T00:00:00+00:00", "language": "ko-KR", "data": r}
        for t, r in toy_story_records().items()
    ]
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    return path


def active_ids(settings: Settings) -> set[int]:
    catalog = Catalog(resolve_generation(settings).catalog_url)
    try:
        return set(catalog.movie_facts().movie_ids)
    finally:
        catalog.close()


def test_build_keeps_the_users_release_and_a_new_source_replaces_it(sample: pd.DataFrame, tmp_path: Path, cli) -> None:
    mine = my_release(sample, tmp_path / "mine", 120)
    cli("ingest", "--source", str(mine), "--quiet")
    cli("catalog")
    cli("tmdb", "import", str(korean_checkpoint(tmp_path / "ko.jsonl")))
    out = cli("build", "--quiet")
    assert "replacing" not in out and "ingest: up to date" in out

    settings = Settings()
    release = pd.read_csv(mine / "ratings.csv").astype(
        {"userId": "int32", "movieId": "int32", "rating": "float32", "timestamp": "int64"}
    )  # ingest's schema
    assert ratings_fingerprint(pd.read_parquet(settings.ratings_path)) == ratings_fingerprint(release)
    assert active_ids(settings) == set(pd.read_csv(mine / "movies.csv")["movieId"])
    only_in_sample = int(sample.loc[~sample["movieId"].isin(release["movieId"]), "movieId"].iloc[0])
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/movies/{only_in_sample}").status_code == 404
        assert client.get("/movies/1").json()["movie_title"] == "토이 스토리"

    smaller = my_release(sample, tmp_path / "smaller", 60)
    out = cli("ingest", "--source", str(smaller), "--quiet")
    assert f"replacing {mine} ({len(release):,} ratings) with {smaller}" in out
    out = cli("build", "--quiet")
    assert "no longer in the release (hidden)" in out
    settings = Settings()
    kept = set(pd.read_csv(smaller / "movies.csv")["movieId"])
    gone = sorted(set(release["movieId"]) - kept)
    assert gone and active_ids(settings) == kept
    store = open_vector_store(resolve_generation(settings))
    try:
        assert set(store.ids().tolist()) == kept  # the hidden movies' vectors are deleted
    finally:
        store.close()
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/movies/{gone[0]}").status_code == 404
        assert client.get("/movies/1").json()["movie_title"] == "토이 스토리"  # TMDB data kept
        recommended = client.post("/recommendations/batch", json={"movie_ids": [1], "k": 50}).json()
        assert not {i["movie_id"] for i in recommended["results"][0]["items"]} & set(gone)

    cli("ingest", "--source", str(mine), "--quiet")  # back to the first release: hidden movies return
    cli("build", "--quiet")
    assert active_ids(Settings()) == set(pd.read_csv(mine / "movies.csv")["movieId"])


def test_an_unreadable_source_record_is_a_one_line_error(tmp_path: Path, cli) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "source.json").write_text("{broken", encoding="utf-8")
    result = CliRunner().invoke(app, ["ingest", "--quiet"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {data / 'source.json'} is unreadable (JSONDecodeError): "
        "run `nextwatch ingest --source <release> --force`"
    ]
