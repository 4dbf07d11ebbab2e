"""The source registry: one entry is all a new learned source needs to be trained, served, evaluated, tuned and
shown on the page (tests/support/toy.py registers one, here, in one place)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from pipelines import steps
from pipelines.evaluation.protocol import Protocol
from pipelines.evaluation.run import evaluate_step
from pipelines.evaluation.sequential_tuning import SequentialGrid
from pipelines.evaluation.tuning import Grid, tune
from services.api.app import create_app
from services.recommender import registry
from services.recommender.registry import registered
from services.serving.runtime import open_runtime
from services.settings import Settings
from services.stores.generations import resolve_generation
from tests.support import toy
from tests.support.servers import private_copy, running_server

TINY_GRID = Grid(
    factors=(8,),
    regularization=(0.01,),
    alpha=(1.0,),
    iterations=(2,),
    sequential=SequentialGrid(window=(5,), backward_weight=(1.0,), popularity_damping=(0.0,), recent_days=(90.0,)),
)


def test_a_registered_source_is_listed_everywhere_and_only_while_registered() -> None:
    before = (registry.strategy_names(), registry.parts(), registry.degradable(), registry.fusable())
    with registered(toy.MODEL, toy.SOURCE):
        assert "toy" in registry.strategy_names() and registry.strategy_names()[-1] == "hybrid"
        order = registry.display_order()
        assert order.index("series+vector") < order.index("toy") < order.index("recent-popular")
        assert registry.labels()["toy"] == "Toy picks"
        assert "toy" in registry.parts() and "toy" in registry.degradable() and "toy" in registry.fusable()
        assert "toy" in registry.REGISTRY.models and "toy" not in registry.store_parts()
    assert (registry.strategy_names(), registry.parts(), registry.degradable(), registry.fusable()) == before


def test_a_name_is_registered_once() -> None:
    with registered(toy.SOURCE), pytest.raises(ValueError, match="registered already"):
        registry.REGISTRY.add(toy.SOURCE)


@pytest.fixture(scope="module")
def toy_world(built_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A copy of the built sample with the toy source registered and weighted in hybrid."""
    with registered(toy.MODEL, toy.SOURCE):
        settings = private_copy(
            built_settings,
            tmp_path_factory.mktemp("toy") / "data",
            als_factors=16,
            als_iterations=5,
            fusion_weights={"sequential": 1.0, "toy": 0.5},
        )
        yield settings


@pytest.mark.integration
def test_the_build_trains_only_the_new_model(toy_world: Settings) -> None:
    trained = steps.train_step(toy_world, progress=False)
    # the learned model may be retrained too when an earlier test retrained the shared build's with other settings
    assert trained is not None and {"toy"} <= set(trained) <= {"toy", "learned"}
    assert toy.ToyModel.exists(resolve_generation(toy_world).models_dir() / "toy")
    assert steps.train_step(toy_world, progress=False) is None  # up to date


@pytest.mark.integration
def test_the_api_lists_and_serves_it(toy_world: Settings) -> None:
    steps.train_step(toy_world, progress=False)
    with TestClient(create_app(toy_world)) as client:
        listed = {s["name"]: s for s in client.get("/strategies").json()["items"]}
        assert listed["toy"] == {"name": "toy", "label": "Toy picks", "available": True}
        assert client.get("/ready").json()["parts"]["toy"] == "ok"
        answer = client.get("/movies/1/recommendations", params={"strategy": "toy", "k": 5}).json()
        assert len(answer["items"]) == 5 and {i["source"] for i in answer["items"]} == {"toy"}
        assert 1 not in [i["movie_id"] for i in answer["items"]]
        fused = client.get("/movies/1/recommendations", params={"k": 10, "explain": "true"}).json()
        assert any("toy" in i["contributions"] for i in fused["items"])


@pytest.mark.integration
def test_it_is_evaluated_on_the_evaluation_build(toy_world: Settings) -> None:
    run = evaluate_step(toy_world, Protocol.from_settings(toy_world, pairs=300, resamples=50), progress=False)
    assert "toy" in run.scores and run.scores["toy"].answered == 1.0
    assert toy.ToyModel.exists(resolve_generation(toy_world).models_dir(evaluation=True) / "toy")
    assert run.as_json()["models"]["toy"]["movies"] > 0


@pytest.mark.integration
def test_it_is_tuned_as_a_part_of_hybrid(toy_world: Settings) -> None:
    ratings = pd.read_parquet(toy_world.ratings_path)
    runtime = open_runtime(toy_world)
    try:
        protocol = Protocol.from_settings(toy_world, pairs=300)
        result = tune(toy_world, ratings, runtime.facts, runtime.vectors, protocol, TINY_GRID)
    finally:
        runtime.close()
    assert any(trial["weights"].get("toy", 0.0) > 0 for trial in result["trials"]["hybrid"])
    assert "toy" in result["validation"]["strategies"]


@pytest.mark.integration
@pytest.mark.browser
def test_the_page_shows_it(toy_world: Settings) -> None:
    from tests.test_page import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS

    if not CHROMIUM.exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium (make system-deps)")
    sync_api = pytest.importorskip("playwright.sync_api")
    steps.train_step(toy_world, progress=False)
    with running_server(toy_world) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(locale="en-US")
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{url}/#/movie/1")
        column = page.locator('[data-strategy="toy"]')
        column.locator("li.rec").first.wait_for()
        assert column.locator("h3").inner_text() == "Toy picks"
        browser.close()


def test_the_toy_store_round_trips(tmp_path: Path) -> None:
    ratings = pd.DataFrame({"userId": [1, 1, 2, 2], "movieId": [5, 6, 5, 7], "rating": [4.0, 5.0, 4.5, 2.0]})
    model = toy.train(ratings, None, cutoff=0, progress=False)
    model.save(tmp_path)
    assert toy.ToyModel.load(tmp_path).similar([5], 2) == [[(6, 1.0)]]
