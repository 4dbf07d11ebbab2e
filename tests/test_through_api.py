"""`evaluate --through-api`: a live service serving the evaluation build scores exactly like the in-process run."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.evaluation.protocol import Protocol
from pipelines.evaluation.run import evaluate_step
from pipelines.evaluation.served import ServiceError
from services.serving.runtime import open_runtime
from services.settings import Settings
from services.stores.catalog import Catalog
from services.stores.generations import resolve_generation
from tests.support.servers import free_port, private_copy, running_server

PROTOCOL = Protocol.from_settings(Settings(), pairs=300, resamples=200)


def _metrics(run) -> dict:
    return {
        name: {k: v for k, v in s.as_dict(run.protocol.k).items() if k not in ("seconds", "qps")}
        for name, s in run.scores.items()
    }


def test_through_api_agrees_exactly_with_in_process(built_settings: Settings, tmp_path: Path) -> None:
    settings = private_copy(built_settings, tmp_path / "data", als_factors=16, als_iterations=5)
    catalog = Catalog(
        resolve_generation(settings).catalog_url
    )  # adult movies: the service must not filter what it is scored on
    catalog.update_movies({"movie_id": m, "adult": "Y"} for m in catalog.movie_facts().movie_ids[::3])
    catalog.close()
    in_process = evaluate_step(settings, PROTOCOL, progress=False)  # also writes the evaluation build
    served = settings.model_copy(update={"serve_models": "evaluation"})
    with running_server(served) as url:
        over_http = evaluate_step(settings, PROTOCOL, progress=False, through_api=url, concurrency=8)
    assert over_http.mode == url
    assert over_http.pairs.equals(in_process.pairs)
    assert list(over_http.scores) == list(in_process.scores)
    assert _metrics(over_http) == _metrics(in_process)


def test_the_full_build_is_not_what_evaluate_scored(built_settings: Settings, tmp_path: Path) -> None:
    """Serving the models trained on all ratings gives other (leaky) numbers: the mode matters."""
    settings = private_copy(built_settings, tmp_path / "data", als_factors=16, als_iterations=5)
    in_process = evaluate_step(settings, PROTOCOL, progress=False)
    with running_server(settings) as url:
        over_http = evaluate_step(settings, PROTOCOL, progress=False, through_api=url, concurrency=8)
    assert _metrics(over_http)["collaborative"] != _metrics(in_process)["collaborative"]
    assert _metrics(over_http)["series"] == _metrics(in_process)["series"]  # nothing learned there


def test_serving_the_evaluation_build_before_it_exists_is_a_clear_error(
    built_settings: Settings, tmp_path: Path
) -> None:
    settings = private_copy(built_settings, tmp_path / "data", serve_models="evaluation")
    with pytest.raises(RuntimeError, match="no evaluation build .*run `nextwatch evaluate` first"):
        open_runtime(settings)


def test_an_unreachable_service_is_a_clear_error(built_settings: Settings, tmp_path: Path) -> None:
    settings = private_copy(built_settings, tmp_path / "data")
    with pytest.raises(ServiceError, match="cannot reach http://127.0.0.1"):
        evaluate_step(settings, PROTOCOL, progress=False, through_api=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ServiceError, match="not an http"):
        evaluate_step(settings, PROTOCOL, progress=False, through_api="localhost:8000")
