"""`nextwatch tune`: chosen on the validation window only, saved to tuned.json, then used by evaluate and serving."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.evaluation.protocol import Protocol
from pipelines.evaluation.run import evaluate_step, tune_step
from services.serving.runtime import open_runtime
from services.settings import Settings
from services.stores.collaborative import CollaborativeModel
from services.stores.generations import resolve_generation
from tests.support.servers import private_copy

PROTOCOL = Protocol.from_settings(Settings(), pairs=1000, resamples=100)


@pytest.fixture(scope="module")
def tuned(built_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict]:
    settings = private_copy(built_settings, tmp_path_factory.mktemp("tune") / "data")
    return settings, tune_step(settings, PROTOCOL, say=lambda _: None)


def test_tune_chooses_the_best_on_validation_and_saves_it(tuned: tuple[Settings, dict]) -> None:
    settings, result = tuned
    saved = json.loads(settings.tuned_path.read_text(encoding="utf-8"))
    assert saved["settings"] == result["settings"]
    trials = saved["trials"]["collaborative"]
    assert len(trials) == 8
    best = max(trials, key=lambda t: (t["hr@10"], t["ndcg@10"]))
    assert {k: saved["settings"][k] for k in ("als_factors", "als_regularization", "als_alpha", "als_iterations")} == {
        k: best[k] for k in ("als_factors", "als_regularization", "als_alpha", "als_iterations")
    }
    sequential = max(saved["trials"]["sequential"], key=lambda t: (t["hr@10"], t["ndcg@10"]))
    assert (saved["settings"]["sequential_window"], saved["settings"]["sequential_backward_weight"]) == (
        sequential["window"],
        sequential["backward_weight"],
    )
    # hybrid is never below its best part on validation (every source alone is in the search space)
    fused = max(saved["trials"]["hybrid"], key=lambda t: (t["hr@10"], t["mrr@10"]))
    assert saved["settings"]["fusion_weights"] == fused["weights"]
    scored = saved["validation"]["strategies"]
    parts = ("series", "vector", "collaborative", "sequential", "recent-popular")
    assert scored["hybrid"]["hr@10"] >= max(scored[name]["hr@10"] for name in parts)
    assert scored["hybrid"]["hr@10"] == pytest.approx(fused["hr@10"])  # the served strategy is what was searched
    # the content sources' inputs are chosen too, on the same validation pairs, and saved with the evidence
    content = saved["trials"]["content"]
    assert saved["settings"]["content_series"] == content["series"]["chosen"]
    assert saved["settings"]["content_text"] == content["text"]["chosen"]
    assert saved["content"]["validation"]["pairs"] == PROTOCOL.pairs

    # the validation window is the `pairs` pairs just before the test window; its models saw neither
    validation = saved["validation"]
    assert validation["pairs"] == PROTOCOL.pairs
    assert validation["cutoff_timestamp"] < validation["test_cutoff_timestamp"]
    run = evaluate_step(settings, PROTOCOL, progress=False)
    assert validation["test_cutoff_timestamp"] == run.cutoff_timestamp


def test_evaluate_and_serving_use_the_tuned_settings(tuned: tuple[Settings, dict]) -> None:
    settings, result = tuned
    run = evaluate_step(settings, PROTOCOL, progress=False)
    models = run.as_json()["models"]
    assert set(models["settings_source"].values()) == {"tuned.json"}
    assert models["als"]["factors"] == result["settings"]["als_factors"]
    assert models["fusion"]["weights"] == result["settings"]["fusion_weights"]
    assert models["sequential"]["window"] == result["settings"]["sequential_window"]
    assert models["tuned"]["precedes_this_test_window"] is True
    saved = CollaborativeModel.load(resolve_generation(settings).models_dir(evaluation=True) / "als")
    assert saved.item_factors.shape[1] == result["settings"]["als_factors"]
    runtime = open_runtime(settings)
    try:
        assert runtime.settings.fusion.weights == result["settings"]["fusion_weights"]
    finally:
        runtime.close()


def test_a_hand_written_tuned_json_is_what_evaluate_trains_with(built_settings: Settings, tmp_path: Path) -> None:
    settings = private_copy(built_settings, tmp_path / "data")
    settings.tuned_path.write_text(
        json.dumps(
            {
                "settings": {
                    "als_factors": 24,
                    "als_regularization": 0.05,
                    "als_alpha": 2.0,
                    "als_iterations": 3,
                    "fusion_weights": {"series": 1.0},
                }
            }
        ),
        encoding="utf-8",
    )
    run = evaluate_step(settings, PROTOCOL, progress=False)
    als = run.models["als"]
    assert (als["factors"], als["regularization"], als["alpha"], als["iterations"]) == (24, 0.05, 2.0, 3)
    assert (
        CollaborativeModel.load(resolve_generation(settings).models_dir(evaluation=True) / "als").item_factors.shape[1]
        == 24
    )
    assert run.models["tuned"]["precedes_this_test_window"] is False  # no validation record in this file
    # hybrid fusing series alone: series members, then the popular fill-in
    runtime = open_runtime(settings)
    try:
        lists = runtime.strategies["hybrid"].similar_batch(run.pairs["prev_movieId"].unique()[:50].tolist(), 10)
    finally:
        runtime.close()
    assert {r.source for recs in lists for r in recs} <= {"series", "popular", "random"}
    assert any(r.source == "series" for recs in lists for r in recs)

    # an explicit setting wins over tuned.json, and the run says where each value came from
    explicit = Settings(data_dir=settings.data_dir, als_factors=12)
    run = evaluate_step(explicit, PROTOCOL, progress=False)
    assert run.models["als"]["factors"] == 12
    assert run.models["settings_source"]["als_factors"] == "explicit"
    assert run.models["settings_source"]["als_alpha"] == "tuned.json"


def test_a_broken_tuned_json_is_a_clear_error(built_settings: Settings, tmp_path: Path) -> None:
    settings = private_copy(built_settings, tmp_path / "data")
    settings.tuned_path.write_text(json.dumps({"settings": {"als_factors": "many"}}), encoding="utf-8")
    with pytest.raises(ValueError, match="tuned.json is not a valid tuning result"):
        evaluate_step(settings, PROTOCOL, progress=False)
