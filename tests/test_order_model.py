"""The learned order-aware model: determinism, pickle-free artifacts, numpy == torch, and what it learns."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipelines.sequence.train import (
    order_net,
    split_validation,
    torch_scores,
    train_order_model,
    training_windows,
    user_sequences,
)
from services.recommender.base import History
from services.recommender.registry import SourceInputs, make_history_sources
from services.settings import HistorySettings
from services.stores.errors import ArtifactError
from services.stores.order_model import ARRAYS, NAME, OrderModel, OrderParams, weight_names
from tests.test_content_choice import facts_of

CYCLE = [10 * (i + 1) for i in range(12)]  # movieIds 10, 20, ..., 120 watched in this order, round and round
TINY = OrderParams(dims=16, blocks=1, heads=2, max_len=8, dropout=0.0, epochs=25, batch_size=32, lr=1e-2,
                   validation_users=0, seed=7)  # fmt: skip


def cycle_ratings(users: int = 60, length: int = 10, seed: int = 0) -> pd.DataFrame:
    """Each user watches `length` consecutive movies of CYCLE from a random start (A -> B -> C ...)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, users + 1):
        start = int(rng.integers(len(CYCLE)))
        for t in range(length):
            rows.append((u, CYCLE[(start + t) % len(CYCLE)], 4.0, 1_000 + 10 * t))
    return pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: one thread is fastest, and two spin-waiting threads crawl on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model(one_thread: None) -> OrderModel:
    return train_order_model(cycle_ratings(), TINY, progress=False)


def test_learns_the_next_movie_of_a_sequence(model: OrderModel) -> None:
    for start in (0, 3, 7):
        history = [CYCLE[(start + i) % len(CYCLE)] for i in range(4)]
        top = model.recommend([history], 1)[0]
        assert top[0][0] == CYCLE[(start + 4) % len(CYCLE)]


def test_deterministic_for_a_seed(caplog: pytest.LogCaptureFixture) -> None:
    """A fixed epoch count (no CPU budget: what the budget's warning advises) trains the same model every run."""
    params = OrderParams(dims=8, blocks=1, max_len=6, dropout=0.2, epochs=2, batch_size=16, validation_users=10,
                         max_seconds=None)  # fmt: skip
    ratings = cycle_ratings(users=30)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    with caplog.at_level("WARNING", logger="pipelines.sequence.train"):
        a = train_order_model(ratings, params, progress=False)
    assert a.info["stopped"] == "epochs" and not caplog.records  # only the budget warns
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is left as it was
    assert not torch.are_deterministic_algorithms_enabled()  # and so is the deterministic switch
    b = train_order_model(ratings, params, progress=False)
    assert a.weights.keys() == b.weights.keys()
    for name in a.weights:
        assert np.array_equal(a.weights[name], b.weights[name]), name
    c = train_order_model(ratings, OrderParams(**{**params.__dict__, "seed": params.seed + 1}), progress=False)
    assert not np.array_equal(a.weights["item_embedding"], c.weights["item_embedding"])


def test_numpy_inference_equals_torch_forward(model: OrderModel) -> None:
    histories = [
        CYCLE[:3],
        CYCLE * 2,  # longer than max_len: the last max_len count
        [CYCLE[5]],
        [999, CYCLE[2], 998, CYCLE[3]],  # unknown ids skipped
        [999],
        [],
    ]
    ours = model.scores(histories)
    theirs = torch_scores(model, histories)
    assert ours.shape == (len(histories), len(CYCLE))
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)
    assert not ours[4].any() and not ours[5].any()
    # the torch network loaded from the model is the one that was trained: its embeddings are the model's
    net = order_net(model)
    assert np.array_equal(net.item_embedding.weight.detach().numpy(), model.weights["item_embedding"])


def test_numpy_inference_of_the_served_shape_equals_torch_and_one_history_at_a_time() -> None:
    """Two blocks and one head, as the build trains it (the fixture has one block and two heads): the numpy pass
    equals torch's, and a batch's scores equal each history's alone, passes of other lengths in between (every
    pass writes its intermediates into one reused workspace)."""
    params = OrderParams(**{**TINY.__dict__, "blocks": 2, "heads": 1, "epochs": 3})
    two_blocks = train_order_model(cycle_ratings(), params, progress=False)
    # three histories of 3 movies are one batch of the forward pass; the others are batches of one
    histories = [CYCLE[:3], CYCLE * 2, [CYCLE[5]], CYCLE[6:9], CYCLE[4:9], CYCLE[:2], CYCLE[1:4]]
    batch = two_blocks.scores(histories)
    np.testing.assert_allclose(batch, torch_scores(two_blocks, histories), atol=1e-4, rtol=0)
    for i in (3, 0, 1, 6, 4, 2, 5, 1):
        np.testing.assert_allclose(two_blocks.scores([histories[i]])[0], batch[i], atol=1e-6, rtol=0)


def test_seen_movies_are_excluded_unless_asked(model: OrderModel) -> None:
    history = CYCLE[:6]
    everything = model.recommend([history], len(CYCLE))[0]
    assert {m for m, _ in everything}.isdisjoint(history)
    assert len(everything) == len(CYCLE) - len(history)
    scores = [s for _, s in everything]
    assert scores == sorted(scores, reverse=True)
    with_seen = model.recommend([history], len(CYCLE), exclude_seen=False)[0]
    assert {m for m, _ in with_seen} == set(CYCLE)


@pytest.mark.parametrize("items", [200, 3_000, 20_000])
def test_best_k_are_those_of_a_full_sort(model: OrderModel, items: int) -> None:
    """Catalogues of every size against the group bound: the k best of a full sort, ties by movieId."""
    rng = np.random.default_rng(items)
    embedding = rng.standard_normal((items + 1, TINY.dims)).astype(np.float32)
    embedding[1::7] = embedding[2]  # many exact ties among the candidates
    ids = rng.permutation(np.arange(1, 10 * items))[:items]
    big = OrderModel(ids, {**model.weights, "item_embedding": embedding}, TINY)
    histories = [ids[:3].tolist(), ids[5:12].tolist(), [int(ids[1])]]
    for k in (1, 10, 60):
        got = big.recommend(histories, k)
        for history, scores, found in zip(histories, big.scores(histories), got):
            scores[np.array(big.encode_ids(history)) - 1] = -np.inf  # seen
            order = np.lexsort((ids, -scores))[:k]
            assert found == list(zip(ids[order].tolist(), scores[order].astype(np.float64).tolist()))


def test_a_window_reads_the_last_movies_and_the_seen_filter_all_of_them(model: OrderModel) -> None:
    history = [*CYCLE[:4], 5, *CYCLE[4:6]]  # an unknown id inside: the window counts known movies
    for window in (1, 3):
        scores = model.scores([CYCLE[6 - window : 6]])[0]
        scores[np.array(model.encode_ids(history)) - 1] = -np.inf
        order = np.lexsort((model.item_ids, -scores))[:4]
        expected = list(zip(model.item_ids[order].tolist(), scores[order].astype(np.float64).tolist()))
        assert model.recommend([history], 4, window=window)[0] == expected
    whole = model.recommend([history], 4)
    assert model.recommend([history], 4, window=TINY.max_len + 50) == whole  # at most max_len
    assert model.recommend([history], 4, window=3) != whole


def test_the_history_source_reads_the_settings_window(model: OrderModel) -> None:
    history = History(tuple(CYCLE[:6]))
    for last in (None, 2):
        inputs = SourceInputs(facts_of(CYCLE), {"learned": model}, None, 42, HistorySettings(learned_last=last))
        source = make_history_sources(inputs)["learned"]
        assert source is not None
        assert source.candidates([history], 4) == model.recommend([history.movies], 4, window=last)
    assert model.recommend([history.movies], 4, window=2) != model.recommend([history.movies], 4)


def test_unknown_ids_are_skipped(model: OrderModel) -> None:
    plain, mixed, unknown, empty = model.recommend([CYCLE[:3], [5, *CYCLE[:3], 7], [5, 7], []], 5)
    assert plain == mixed
    assert unknown == [] and empty == []
    assert 5 not in model and CYCLE[0] in model


def test_saved_without_pickle_and_loaded(model: OrderModel, tmp_path: Path) -> None:
    assert not OrderModel.exists(tmp_path)
    model.save(tmp_path)
    assert OrderModel.exists(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{NAME}.json", *(f"{NAME}.{a}.npy" for a in ARRAYS)])
    for name in ARRAYS:
        assert np.load(tmp_path / f"{NAME}.{name}.npy", allow_pickle=False).dtype != object
    loaded = OrderModel.load(tmp_path)
    assert loaded.params == model.params
    assert loaded.info["items"] == len(CYCLE)
    assert set(loaded.weights) == set(weight_names(TINY.blocks))
    assert all(np.array_equal(loaded.weights[name], model.weights[name]) for name in model.weights)
    assert all(not w.flags.writeable for w in loaded.weights.values())  # mapped read-only, shared by workers
    histories = [CYCLE[:4], CYCLE[7:]]
    assert np.array_equal(loaded.scores(histories), model.scores(histories))
    assert loaded.recommend(histories, 5) == model.recommend(histories, 5)


def test_missing_and_broken_artifacts(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        OrderModel.load(tmp_path)
    (tmp_path / f"{NAME}.json").write_text('{"params": {"dims": 8}, "info": {}}')
    for name in ARRAYS:
        (tmp_path / f"{NAME}.{name}.npy").write_bytes(b"not an array")
    with pytest.raises(ArtifactError, match="order model"):
        OrderModel.load(tmp_path)
    for name in ARRAYS:
        (tmp_path / f"{NAME}.{name}.npy").unlink()
    (tmp_path / f"{NAME}.npz").write_bytes(b"an older version's")
    with pytest.raises(ArtifactError, match="order_model.npz was saved by an older version"):
        OrderModel.load(tmp_path)


def test_the_store_does_not_import_torch() -> None:
    code = "import sys, services.stores.order_model; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1]).returncode == 0


@pytest.mark.parametrize(("preset", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_training_threads_sleep_unless_told_otherwise(preset: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset is not None:
        env["OMP_WAIT_POLICY"] = preset
    code = "import os, pipelines.models.trainers; print(os.environ['OMP_WAIT_POLICY'])"
    run = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1], env=env, capture_output=True)
    assert run.stdout.decode().strip() == expected


def test_sequences_follow_timestamp_then_movie_id() -> None:
    ratings = pd.DataFrame(
        {
            "userId": [2, 1, 1, 1, 2],
            "movieId": [30, 20, 10, 30, 10],
            "rating": 4.0,
            "timestamp": [5, 2, 2, 1, 6],  # user 1: 30 at t=1, then 10 and 20 tie at t=2
        }
    )
    seqs = user_sequences(ratings)
    assert seqs.item_ids.tolist() == [10, 20, 30]
    rows = [seqs.items[a:b].tolist() for a, b in zip(seqs.indptr[:-1], seqs.indptr[1:])]
    assert rows == [[3, 1, 2], [3, 1]]


def test_training_windows_cover_every_target_once() -> None:
    items = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12])
    indptr = np.array([0, 5, 9, 10, 11])  # users of 5, 4, 1 and 1 movies
    windows = training_windows(items, indptr, max_len=2, windows="all")
    assert windows.tolist() == [[3, 4, 5], [1, 2, 3], [7, 8, 9], [0, 6, 7]]
    last = training_windows(items, indptr, max_len=2, windows="last")
    assert last.tolist() == [[3, 4, 5], [7, 8, 9]]


def test_validation_holds_out_each_chosen_users_last_movie() -> None:
    seqs = user_sequences(cycle_ratings(users=20, length=5))
    params = OrderParams(max_len=4, validation_users=6)
    items, indptr, validation = split_validation(seqs, params)
    assert validation is not None and len(validation.targets) == 6
    assert len(items) == len(seqs.items) - 6
    assert (validation.histories != 0).sum(axis=1).tolist() == [4] * 6
    # a chosen user's target is not among their training movies' positions any more
    assert indptr[-1] == len(items)


def test_the_learning_rate_halves_when_validation_stalls() -> None:
    """With `lr_patience` 0, each epoch whose validation NDCG is no gain on the best so far (torch's
    ReduceLROnPlateau: by more than a relative 1e-4) halves the rate the next epoch trains with; without it the
    rate stays."""
    params = OrderParams(dims=8, blocks=1, max_len=6, dropout=0.0, epochs=8, batch_size=16, lr=1e-2,
                         validation_users=20, patience=8, lr_patience=0)  # fmt: skip
    history = train_order_model(cycle_ratings(users=40), params, progress=False).info["history"]
    best, rate = -1.0, params.lr
    for row in history:
        if row["ndcg@10"] <= best * (1 + 1e-4):
            rate /= 2
        best = max(best, row["ndcg@10"])
        assert row["lr"] == pytest.approx(rate)
    assert history[-1]["lr"] < params.lr  # the tiny cycle is learned within a few epochs: it stalled
    constant = OrderParams(**{**params.__dict__, "lr_patience": None, "epochs": 2})
    assert all(
        "lr" not in row for row in train_order_model(cycle_ratings(users=40), constant, progress=False).info["history"]
    )


def test_early_stopping_keeps_the_best_epoch() -> None:
    params = OrderParams(dims=8, blocks=1, max_len=6, dropout=0.0, epochs=6, batch_size=16, lr=1e-2,
                         validation_users=20, patience=2)  # fmt: skip
    model = train_order_model(cycle_ratings(users=40), params, progress=False)
    info = model.info
    assert 1 <= info["best_epoch"] <= info["epochs_run"] <= 6
    assert info["validation"]["ndcg@10"] == max(row["ndcg@10"] for row in info["history"])
    assert info["stopped"] in ("epochs", "patience")


def test_the_time_budget_is_kept_mid_epoch(caplog: pytest.LogCaptureFixture) -> None:
    params = OrderParams(dims=8, blocks=1, max_len=6, epochs=50, batch_size=4, validation_users=5, max_seconds=1e-9)
    with caplog.at_level("WARNING", logger="pipelines.sequence.train"):
        model = train_order_model(cycle_ratings(users=30), params, progress=False)
    assert model.info["stopped"] == "max_seconds" and model.info["epochs_run"] == 0
    assert model.recommend([CYCLE[:3]], 3)[0]  # an untrained model still answers
    # the budget, not the data, ended it: one line says so and how to train the same model every run
    [warning] = [r.getMessage() for r in caplog.records if r.name == "pipelines.sequence.train"]
    assert "NEXTWATCH_LEARNED_MAX_SECONDS (1e-09 CPU seconds) in epoch 1" in warning
    assert "set NEXTWATCH_LEARNED_EPOCHS=1 and NEXTWATCH_LEARNED_MAX_SECONDS= (empty: no budget)" in warning


@pytest.mark.parametrize("loss", ["sampled_ce", "gbce"])
def test_sampled_losses_learn_the_sequence(loss: str) -> None:
    params = OrderParams(**{**TINY.__dict__, "loss": loss, "negatives": 6, "epochs": 30})
    model = train_order_model(cycle_ratings(), params, progress=False)
    assert model.recommend([CYCLE[2:6]], 1)[0][0][0] == CYCLE[6]


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="heads"):
        OrderParams(dims=10, heads=3)
    with pytest.raises(ValueError, match="loss"):
        OrderParams(loss="bpr")
    assert OrderParams.from_dict({"dims": 32, "from_a_newer_version": 1}) == OrderParams(dims=32)
