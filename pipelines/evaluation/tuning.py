"""`nextwatch tune`: every learned setting, chosen on the validation window.

In order: ALS hyperparameters (by `collaborative` HR@k), the sequential model's window, backward weight
and popularity damping and recent-popular's days (by their own HR@k), then hybrid's fusion weights and
rank constant over every fusable source of the registry (by hybrid HR@k; every source alone is in the
search space, so on validation hybrid is never below its best part).

The validation window is the `pairs` next-item pairs just before the test window; its models train on
ratings strictly before its first pair, so neither the test pairs nor the validation pairs are seen.

Then hybrid over a history (:func:`tune_history`): how many recent movies the history sources read and their
decay, and the history hybrid's weights and rank constant, chosen on the last-item validation targets (each
user's second-to-last rating, so thousands of users on a real release; models trained in memory on the ratings
minus each user's last two). The fusion is kept over its best single source only when it wins on those
targets by more than noise: the paired user-bootstrap interval of the HR@k difference lies above 0. The fusion
then drops each of its sources, the slowest first, that it does not need by more than noise, and the learned
model's window follows the same rule: a longer one only when it wins by more than noise (each costs every answer;
`within_noise`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from pipelines.collaborative.als import train_als
from pipelines.collaborative.popularity import recent_popularity
from pipelines.evaluation.content_choice import choose_content
from pipelines.evaluation.fusion_search import FusionChoice, choose_fusion, search_weights
from pipelines.evaluation.last_item import VALIDATION, history_strategies, later_share, leave_last_out, train_models
from pipelines.evaluation.metrics import StrategyScore, compare_paired, evaluate_histories, evaluate_strategies
from pipelines.evaluation.protocol import Protocol, evaluation_windows, ratings_fingerprint, utc
from pipelines.evaluation.sequential_tuning import SequentialGrid, tune_sequential
from pipelines.evaluation.within_noise import (
    answer_seconds,
    lightest_within_noise,
    shortest_within_noise,
    window_name,
)
from pipelines.models.model_set import resolve
from services.recommender.history import (
    SEQUENTIAL_SCORINGS,
    CollaborativeHistorySource,
    IgnoringHistory,
    LearnedHistorySource,
)
from services.recommender.registry import HYBRID, REGISTRY, SourceInputs, fusable, make_history_sources, make_sources
from services.recommender.sources import VectorIndex
from services.recommender.standard import FusionConfig, assemble_strategies
from services.settings import HistorySettings, Settings
from services.stores.catalog import MovieFacts
from services.stores.collaborative import ALSParams, CollaborativeModel
from services.stores.popularity import Counts

# models chosen by grids of their own below (the others are trained with the settings as they are)
OWN_GRIDS = ("als", "sequential", "recent-popular")
# strategies scored alone need no fusion
NO_FUSION = FusionConfig({}, 50, 60.0)
# history sources that read none of the history settings the grid searches (L, decay, scoring): their lists are
# the same at every point of the history grid, so they are asked once
READ_NO_HISTORY_SETTINGS = (IgnoringHistory, CollaborativeHistorySource, LearnedHistorySource)


# the learned model's windows tried against the one it reads now, when the history hybrid weighs it (a shorter
# window answers a long history faster: its forward pass over 200 movies 0.74 ms, 100 0.41, 50 0.27-0.30;
# bench/learned_forward.py, BENCHMARKS.md session 16)
LEARNED_WINDOWS = (50, 100)


def learned_windows(
    weights: dict[str, float],
    model: Any,
    current: int | None,
    current_score: StrategyScore,
    score: Callable[[int | None], StrategyScore],
) -> dict[int | None, StrategyScore]:
    """The history hybrid's scores on validation per learned window (None: as many movies as the model was trained
    to read): the current one's and, when the hybrid weighs the learned model, each of LEARNED_WINDOWS shorter than
    the current and the model's max_len (`score(window)` scores one)."""
    windows: dict[int | None, StrategyScore] = {current: current_score}
    if weights.get("learned", 0) > 0 and model is not None:
        longest = min(current or model.params.max_len, model.params.max_len)
        for last in LEARNED_WINDOWS:
            if last < longest:
                windows[last] = score(last)
    return windows


@dataclass(frozen=True)
class HistoryGrid:
    """How many recent movies the history sources read (L), their decay and how sequential scores each movie's list
    (`history_sequential`); every point gets its own fusion search."""

    last: tuple[int, ...] = (5, 10, 20)
    decay: tuple[float, ...] = (0.5, 0.7, 0.9)
    sequential: tuple[str, ...] = SEQUENTIAL_SCORINGS

    def points(self) -> list[HistorySettings]:
        return [
            HistorySettings(last=last, decay=decay, sequential=sequential)
            for last, decay, sequential in itertools.product(self.last, self.decay, self.sequential)
        ]


@dataclass(frozen=True)
class Grid:
    """The candidate values (small: the whole search runs in well under a minute on the bundled sample)."""

    factors: tuple[int, ...] = (32, 64)
    regularization: tuple[float, ...] = (0.01, 0.1)
    alpha: tuple[float, ...] = (1.0, 10.0)
    iterations: tuple[int, ...] = (15,)
    sequential: SequentialGrid = field(default_factory=SequentialGrid)
    history: HistoryGrid = field(default_factory=HistoryGrid)

    def als(self, base: ALSParams) -> list[ALSParams]:
        return [
            replace(base, factors=f, regularization=r, alpha=a, iterations=i)
            for f, r, a, i in itertools.product(self.factors, self.regularization, self.alpha, self.iterations)
        ]


def _summary(score: StrategyScore, k: int) -> dict[str, float]:
    return {f"hr@{k}": score.hit_ratio, f"ndcg@{k}": score.ndcg, f"mrr@{k}": score.mrr}


def _best(trials: list[tuple[Any, StrategyScore]]) -> tuple[Any, StrategyScore]:
    """Highest hit ratio, then highest NDCG, then the earliest in grid order."""
    best = max(range(len(trials)), key=lambda i: (trials[i][1].hit_ratio, trials[i][1].ndcg, -i))
    return trials[best]


def tune(
    settings: Settings,
    ratings: pd.DataFrame,
    facts: MovieFacts,
    vectors: VectorIndex | None,
    protocol: Protocol,
    grid: Grid = Grid(),
    *,
    content_embed: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Search the grid on the validation window; returns what tuned.json holds (settings + the evidence).

    First the content sources' inputs (:func:`choose_content`; `content_embed` embeds every text it lacks), so
    that hybrid's weights are searched over the series as chosen (the vectors stay the build's until the next
    `embed` step).
    ALS and the sequential model (and recent-popular's days) are chosen by their own grids; every other
    model of the registry is trained with `settings`; hybrid's weights are searched over every fusable
    source of the registry."""
    started = time.perf_counter()
    windows = evaluation_windows(ratings, protocol.min_ratings, protocol.pairs)
    validation = windows.validation
    if validation.empty:
        raise RuntimeError(
            f"no validation window: fewer than {protocol.pairs + 1:,} next-item pairs among movies with "
            f">= {protocol.min_ratings:,} ratings: lower them (`nextwatch tune --pairs N --min-ratings N`)"
        )
    cutoff, k, size = windows.validation_cutoff, protocol.k, len(facts.movie_ids)
    depth = settings.fusion.depth
    history = ratings.loc[ratings["timestamp"] < cutoff]
    content = choose_content(settings, ratings, facts, validation, cutoff, k, embed=content_embed, say=say)
    settings = settings.updated(**content["settings"])

    def score(strategy: Any) -> StrategyScore:
        return evaluate_strategies({strategy.name: strategy}, validation, k, size, resamples=0)[strategy.name]

    def strategies(models: dict[str, Any], fusion: FusionConfig) -> dict[str, Any]:
        return assemble_strategies(facts, models, fusion, vectors=vectors, seed=protocol.seed, content=settings.content)

    models: dict[str, Any] = {
        spec.name: resolve(spec.trainer)(history, spec.params(settings), cutoff=cutoff, progress=False)
        for spec in REGISTRY.models.values()
        if spec.name not in OWN_GRIDS
    }
    als_trials: list[tuple[tuple[ALSParams, CollaborativeModel], StrategyScore]] = []
    for params in grid.als(ALSParams(**settings.als.model_dump())):
        model = train_als(history, params, progress=False)
        als_trials.append(((params, model), score(strategies({**models, "als": model}, NO_FUSION)["collaborative"])))
        say(f"tune: {_describe(params)} -> HR@{k} {als_trials[-1][1].hit_ratio:.4f}")
    (als_params, models["als"]), _ = _best(als_trials)

    sequential = tune_sequential(ratings, validation, cutoff, grid.sequential, k, seed=protocol.seed)
    say(f"tune: sequential {asdict(sequential.params)}, recent-popular days {sequential.recent_days}")
    models["sequential"] = sequential.model
    models["recent-popular"] = Counts(recent_popularity(ratings, cutoff, sequential.recent_days), cutoff)

    sources = make_sources(SourceInputs(facts, models, vectors, protocol.seed, content=settings.content))
    searched = {name: source for name in fusable() if (source := sources[name]) is not None}
    popular = sources["popular"]
    assert popular is not None, "popular is always there"
    fusion = choose_fusion(searched, validation, k, fallback=popular, depth=depth)
    served = strategies(models, FusionConfig(fusion.weights, depth, fusion.rank_constant))
    validated = {name: _summary(score(served[name]), k) for name in served}
    say(
        f"tune: hybrid weights {fusion.weights}, rank constant {fusion.rank_constant} -> HR@{k} "
        f"{validated['hybrid'][f'hr@{k}']:.4f}"
    )
    chosen = {
        **content.pop("settings"),
        **_als_fields(als_params),
        "sequential_window": sequential.params.window,
        "sequential_backward_weight": sequential.params.backward_weight,
        "sequential_popularity_damping": sequential.params.popularity_damping,
        "recent_popular_days": sequential.recent_days,
        "fusion_weights": fusion.weights,
        "fusion_rank_constant": fusion.rank_constant,
    }
    history_tuning = tune_history(settings.updated(**chosen), ratings, facts, vectors, protocol, grid.history, say=say)
    chosen.update(history_tuning.pop("settings"))
    return {
        "settings": chosen,
        "chosen_by": f"hr@{k} on the validation window (ties: ndcg@{k} or mrr@{k}, then grid order)",
        "protocol": asdict(protocol),
        "validation": {
            "pairs": len(validation),
            "users": int(validation["userId"].nunique()),
            "first": utc(cutoff),
            "last": utc(int(validation["timestamp"].max())),
            "cutoff_timestamp": cutoff,
            "test_cutoff_timestamp": windows.test_cutoff,
            "strategies": validated,
        },
        "data": ratings_fingerprint(ratings),
        "trials": {
            "collaborative": [{**_als_fields(p), **_summary(s, k)} for (p, _), s in als_trials],
            **sequential.trials,
            "hybrid": fusion.trials,
            "history": history_tuning.pop("trials"),
            "content": content.pop("trials"),
        },
        "history": history_tuning,
        "content": content,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _als_fields(params: ALSParams) -> dict[str, Any]:
    return {
        "als_factors": params.factors,
        "als_regularization": params.regularization,
        "als_alpha": params.alpha,
        "als_iterations": params.iterations,
    }


def _describe(params: ALSParams) -> str:
    return " ".join(f"{k}={v}" for k, v in _als_fields(params).items())


def tune_history(
    settings: Settings,
    ratings: pd.DataFrame,
    facts: MovieFacts,
    vectors: VectorIndex | None,
    protocol: Protocol,
    grid: HistoryGrid = HistoryGrid(),
    *,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Choose `history_last`, `history_decay`, `history_sequential`, `history_weights`, `history_rank_constant`
    and `history_learned_last` on the last-item validation targets (each user's second-to-last rating, the history
    before it as the query).

    Every registered model is trained in memory on the ratings minus each user's last two, with `settings`'
    (already tuned) parameters. For each (L, decay) of the grid the fusion weights are searched over every
    fusable history source; the best (HR@k, then MRR@k) wins. The fusion is then kept over its best single
    source only when the paired user-bootstrap interval of their HR@k difference lies above 0; otherwise the
    single source is chosen. Then the sources it does not need beyond noise (`lightest_within_noise`) and the
    learned model's window (`shortest_within_noise`). Returns {"settings", "trials", ...the evidence}.
    """
    started = time.perf_counter()
    k, depth, size = protocol.k, settings.fusion.depth, len(facts.movie_ids)
    split = leave_last_out(ratings, VALIDATION)
    current = {
        "history_last": settings.history.last,
        "history_decay": settings.history.decay,
        "history_sequential": settings.history.sequential,
        "history_weights": dict(settings.history.weights),
        "history_rank_constant": settings.history.rank_constant,
        "history_learned_last": settings.history.learned_last,
    }
    if len(split) == 0:
        say("tune: no user has 3 ratings: history settings kept as they are")
        return {"settings": current, "trials": [], "skipped": "no last-item validation targets"}
    trained = train_models(settings, split)
    n = len(split)
    queries = [0] * n  # the history sources never return a seen movie: no query movie to drop
    rows = np.arange(n)
    targets = split.targets.astype(np.int64)
    points: list[tuple[HistorySettings, FusionChoice, dict[str, float]]] = []
    asked: dict[str, list[list[tuple[int, float]]]] = {}  # lists of the sources that read no history settings

    def candidates(source: Any, want: int, key: str) -> list[list[tuple[int, float]]]:
        if not isinstance(source, READ_NO_HISTORY_SETTINGS):
            return source.candidates(split.histories, want)
        if key not in asked:
            asked[key] = source.candidates(split.histories, want)
        return asked[key]

    for shape in grid.points():
        reading = shape.model_copy(update={"learned_last": settings.history.learned_last})  # not searched
        sources = make_history_sources(SourceInputs(facts, trained, vectors, protocol.seed, reading, settings.content))
        searched = {name: source for name in fusable() if (source := sources[name]) is not None}
        popular = sources["popular"]
        assert popular is not None, "popular is always there"
        if not searched:
            break
        lists = {name: candidates(source, depth, name) for name, source in searched.items()}
        fallback = candidates(popular, 3 * k, "fallback")
        choice = search_weights(lists, queries, rows, targets, k, depth=depth, fallback=fallback)
        singles = {name: trial[f"hr@{k}"] for name, trial in zip(searched, choice.trials)}
        points.append((reading, choice, singles))
        say(
            f"tune: history last {shape.last}, decay {shape.decay:g}, sequential {shape.sequential} -> weights "
            f"{choice.weights}, rank constant "
            f"{choice.rank_constant:g}: HR@{k} {choice.hit_ratio:.4f} (best single {max(singles.values()):.4f})"
        )
    if not points:
        return {"settings": current, "trials": [], "skipped": "no fusable history source"}
    best = max(range(len(points)), key=lambda i: (points[i][1].hit_ratio, points[i][1].mrr, -i))
    shape, choice, singles = points[best]
    names = list(singles)
    single_i = max(range(len(names)), key=lambda i: (choice.trials[i][f"hr@{k}"], choice.trials[i][f"mrr@{k}"], -i))
    single = names[single_i]

    def hybrid(weights: dict[str, float], rank_constant: float, reading: HistorySettings = shape) -> dict[str, Any]:
        fusion = FusionConfig(weights, depth, rank_constant)
        return history_strategies(
            facts, trained, vectors, reading, fusion, seed=protocol.seed, content=settings.content
        )

    served = hybrid(choice.weights, choice.rank_constant)
    scored = evaluate_histories(served, split.histories, targets, split.users, k, size, resamples=0)
    fused_alone = sum(1 for w in choice.weights.values() if w > 0) <= 1
    single_weights = {name: (1.0 if name == single else 0.0) for name in names}
    if fused_alone:
        kept, difference = "fusion", None
        weights = choice.weights
    else:
        alone = evaluate_histories(
            {HYBRID: hybrid(single_weights, choice.rank_constant)[HYBRID]},
            split.histories,
            targets,
            split.users,
            k,
            size,
            resamples=0,
        )[HYBRID]
        difference = compare_paired(
            scored[HYBRID],
            alone,
            split.users,
            HYBRID,
            single,
            k,
            resamples=max(protocol.resamples, 200),
            seed=protocol.seed,
            note="the best single source, on the last-item validation targets",
        )
        kept = "fusion" if difference.interval[0] > 0 else "single"
        weights = choice.weights if kept == "fusion" else single_weights
        if kept == "single":
            scored = {**scored, HYBRID: alone}
    say(
        f"tune: history hybrid {'fusion' if kept == 'fusion' else single + ' alone'} "
        + (f"(fusion - {single}: {difference.describe()})" if difference is not None else "(one source)")
    )
    source_evidence: dict[str, Any] = {}
    searched_score = scored[HYBRID]  # the searched fusion's (or its single source's)
    if sum(1 for w in weights.values() if w > 0) > 1:
        sources = make_history_sources(SourceInputs(facts, trained, vectors, protocol.seed, shape, settings.content))
        asked_now = {name: source for name, w in weights.items() if w > 0 and (source := sources.get(name))}
        seconds = answer_seconds(asked_now, split.histories, depth)

        def fusion_score(trial: dict[str, float]) -> StrategyScore:
            served = {HYBRID: hybrid(trial, choice.rank_constant)[HYBRID]}
            return evaluate_histories(served, split.histories, targets, split.users, k, size, resamples=0)[HYBRID]

        weights, lightest, source_evidence = lightest_within_noise(
            searched_score, weights, seconds, fusion_score, split.users, k,
            resamples=max(protocol.resamples, 200), seed=protocol.seed,
        )  # fmt: skip
        scored = {**scored, HYBRID: lightest}
        dropped = [name for name, entry in source_evidence.items() if entry["dropped"]]
        say(f"tune: history hybrid without {', '.join(dropped) or 'nothing'} (each slower source within noise)")

    def window_score(last: int | None) -> StrategyScore:
        reading = shape.model_copy(update={"learned_last": last})
        served = {HYBRID: hybrid(weights, choice.rank_constant, reading)[HYBRID]}
        return evaluate_histories(served, split.histories, targets, split.users, k, size, resamples=0)[HYBRID]

    windows = learned_windows(weights, trained.get("learned"), shape.learned_last, scored[HYBRID], window_score)
    learned_last, window_evidence = shortest_within_noise(
        windows, split.users, k, resamples=max(protocol.resamples, 200), seed=protocol.seed, searched=searched_score
    )
    if len(windows) > 1:
        figures = ", ".join(f"{name} {entry[f'hr@{k}']:.4f}" for name, entry in window_evidence.items())
        say(f"tune: the learned model's window -> {window_name(learned_last)} (HR@{k}: {figures})")
    chosen = {
        "history_last": shape.last,
        "history_decay": shape.decay,
        "history_sequential": shape.sequential,
        "history_weights": dict(weights),
        "history_rank_constant": choice.rank_constant,
        "history_learned_last": learned_last,
    }
    return {
        "settings": chosen,
        "chosen_by": f"hr@{k} of the history hybrid on the last-item validation targets (ties: mrr@{k}, then "
        "grid order); the fusion only when it beats its best single source by more than noise (paired "
        "user-bootstrap 95% interval of the HR difference above 0); then the fusion without each source, the slowest "
        "first, while the chosen fusion does not beat that by more than noise (the same paired interval: a source "
        "costs every answer); then the learned model's window: the shortest the best does not beat by more than "
        "noise, a shorter one answering faster",
        "sources_within_noise": source_evidence,
        "learned_windows": window_evidence,
        "validation": {
            "targets": n,
            "users": int(len(np.unique(split.users))),
            "target": "each user's second-to-last rating (users with >= 3 ratings); the history before it",
            "models": "trained in memory on the ratings minus each user's last two (no time cutoff)",
            "training_ratings": int(len(split.train)),
            "later_training_share": round(later_share(split), 4),
            "strategies": {name: _summary(score, k) for name, score in scored.items()},
        },
        "fusion_against_best_single": {
            "fusion": {"weights": choice.weights, "rank_constant": choice.rank_constant, f"hr@{k}": choice.hit_ratio},
            "single": {"source": single, f"hr@{k}": singles[single]},
            "paired": difference.as_dict() if difference is not None else None,
            "kept": kept,
        },
        "trials": [
            {
                "last": p_shape.last,
                "decay": p_shape.decay,
                "sequential": p_shape.sequential,
                "weights": p_choice.weights,
                "rank_constant": p_choice.rank_constant,
                f"hr@{k}": p_choice.hit_ratio,
                f"mrr@{k}": p_choice.mrr,
                "singles": p_singles,
            }
            for p_shape, p_choice, p_singles in points
        ],
        "seconds": round(time.perf_counter() - started, 2),
    }
