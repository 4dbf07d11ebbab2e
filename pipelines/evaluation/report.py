"""The evaluation report: report.json, report.md (table, protocol, provenance, references) and hit_ratio.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.evaluation.history_protocol import ProtocolResult
from pipelines.evaluation.metrics import StrategyScore
from pipelines.evaluation.protocol import utc
from pipelines.evaluation.run import EvaluationRun
from services.stores.atomic import atomic_path, write_text_atomic

# Seed 002's HR@10 on MovieLens 32M (min_ratings 1000, 3000 pairs; vector = OpenAI ada-002 on Korean
# overviews). Another dataset and embedding model: a landmark, not a comparison.
REFERENCE_DATASET = "MovieLens 32M (seed 002)"
REFERENCE_HR10 = {"random": 0.0, "series": 0.0603, "vector": 0.0683, "series+vector": 0.0653}


def write_report(run: EvaluationRun, directory: Path) -> list[Path]:
    """Write report.json, report.md and hit_ratio.png into `directory`; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "report.json", directory / "report.md", directory / "hit_ratio.png"]
    payload = {**run.as_json(), "reference": {"dataset": REFERENCE_DATASET, "hr@10": REFERENCE_HR10}}
    write_text_atomic(paths[0], json.dumps(payload, indent=2, ensure_ascii=False))
    write_text_atomic(paths[1], render_markdown(run))
    with atomic_path(paths[2]) as tmp:
        plot_hit_ratio(run, tmp)
    return paths


def markdown_table(run: EvaluationRun) -> str:
    """The scores as a Markdown table with 95% intervals."""
    return scores_table(run.scores, run.protocol.k)


def scores_table(scores: dict[str, StrategyScore], k: int) -> str:
    """Strategy scores as a Markdown table with 95% intervals."""
    lines = [
        f"| strategy | HR@{k} [95% CI] | NDCG@{k} [95% CI] | MRR@{k} [95% CI] | answered | coverage | q/s | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in scores.items():
        lines.append(
            f"| {name} | {s.formatted('hr')} | {s.formatted('ndcg')} | {s.formatted('mrr')} | "
            f"{s.answered:.3f} | {s.coverage:.4f} | {s.qps:,.0f} | {s.seconds:.3f} |"
        )
    return "\n".join(lines)


def render_markdown(run: EvaluationRun) -> str:
    """The whole report.md."""
    info: dict[str, Any] = run.as_json()
    p, data, models = run.protocol, run.data, run.models
    lines = [
        "# nextwatch evaluation report",
        "",
        f"Next-item hit ratio (seed 002's protocol) on **{len(run.pairs):,} pairs from {run.users} users**, "
        f"scored {'in process' if run.mode == 'in-process' else 'through the service at ' + run.mode}; "
        f"evaluation took {run.seconds:.1f} s.",
        "",
        markdown_table(run),
        "",
        *([f"**Paired comparison**: {run.comparison.describe()}.", ""] if run.comparison else []),
        f"Intervals: 95% percentile bootstrap over **users** ({p.resamples} resamples, seed {p.seed}); "
        "pairs of one user are not independent, so resampling pairs would understate the uncertainty. "
        "*answered*: share of pairs where the strategy's own source (not the random/popular fallback) "
        "contributed; *coverage*: distinct recommended movies / catalogue movies; *q/s* and *seconds*: pairs "
        "scored per second and time of the strategy's batch path (each distinct previous movie asked once).",
        "",
        *_protocol_section(run.history, "History protocol", run.models.get("history")),
        *_protocol_section(run.last_item, "Last-item protocol"),
        "## Protocol",
        "",
        f"- movies with at least **{p.min_ratings}** ratings; each user's ratings ordered by (timestamp, movieId); "
        "each rating paired with the user's previous one",
        f"- the latest **{p.pairs}** pairs by (timestamp, userId, movieId); a hit when the next movie is in the "
        f"top **{p.k}** for the previous movie",
        f"- test window: {info['test_window']['first']} .. {info['test_window']['last']}",
        f"- **cutoff: {info['cutoff']}** (timestamp {run.cutoff_timestamp}): {_cutoff_sentence(run)}",
        "",
        "## Models",
        "",
        *_model_lines(models),
        "",
        "## Data",
        "",
        f"- {data['ratings']:,} ratings, {data['users']:,} users, {data['movies']:,} rated movies, "
        f"{data.get('catalog_movies', 0):,} catalogue movies",
        f"- ratings from {utc(data['first_timestamp'])} to {utc(data['last_timestamp'])}",
        f"- fingerprint (sha256 of the ratings' content): `{data['sha256']}`",
        "",
        f"## Reference: {REFERENCE_DATASET} — another dataset, not comparable",
        "",
        "Seed 002 reported these HR@10 figures on **MovieLens 32M** (movies with >= 1000 ratings, latest 3000 "
        "pairs, vector = OpenAI ada-002 on Korean overviews). They come from a different, much larger dataset "
        "and a different embedding model; they are landmarks, not targets for this table.",
        "",
        "| strategy | HR@10 on MovieLens 32M (seed 002) |",
        "|---|---|",
        *[f"| {name} | {value:.4f} |" for name, value in REFERENCE_HR10.items()],
        "",
    ]
    return "\n".join(lines)


def _protocol_section(result: ProtocolResult | None, heading: str, served: dict[str, Any] | None = None) -> list[str]:
    """A protocol's section of report.md: what it is, its table, its paired comparisons, how its models were made."""
    if result is None:
        return []
    info = result.info
    lines = [f"## {heading}", "", f"**{result.rows:,} rows from {result.n_users:,} users**: {info['protocol']}."]
    length = info.get("history_length")
    if length:
        lines[-1] += f" Histories: median {length['median']:g} movies, longest {length['max']:g}."
    lines += ["", scores_table(result.scores, result.k), ""]
    one = info.get("one_movie_hybrid")
    if one:
        k = result.k
        ci = one.get(f"hr@{k}_ci")
        lines.append(
            f"- one-movie hybrid on the same rows, asked with each history's last movie: HR@{k} "
            f"{one[f'hr@{k}']:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
        )
    lines += [f"- **Paired comparison**: {c.describe()}." for c in result.paired.values()]
    if result.parts:
        below = result.hybrid_below
        parts = ", ".join(
            f"{name} {c.difference:+.4f} [{c.interval[0]:+.4f}, {c.interval[1]:+.4f}]"
            for name, c in result.parts.items()
        )
        verdict = f"**significantly below {', '.join(below)}**" if below else "not significantly below any of them"
        lines.append(f"- hybrid against each of its parts (HR@{result.k}, paired): {parts}; hybrid is {verdict}.")
    models = info.get("models")
    if models:
        lines.append(
            f"- models: {models['trained_on']}, {models['ratings']:,} ratings, trained in memory with the served "
            f"settings (history: last {models['history']['last']}, decay {models['history']['decay']:g}; hybrid "
            f"weights {_weights(models['fusion']['weights'])}, rank constant {models['fusion']['rank_constant']:g})"
        )
    else:
        lines.append(
            "- models: the evaluation build (trained only on ratings before the cutoff below)"
            + (
                f"; history: last {served['last']}, decay {served['decay']:g}; hybrid weights "
                f"{_weights(served['weights'])}, rank constant {served['rank_constant']:g}"
                if served
                else ""
            )
        )
    leakage = info.get("leakage")
    if leakage:
        lines.append(f"- **time leakage**: {leakage['note']}")
    return [*lines, ""]


def _cutoff_sentence(run: EvaluationRun) -> str:
    if run.mode == "in-process":
        return "ALS, the sequential model, popular and recent-popular were trained only on ratings strictly before it"
    return (
        "the service's models must come from ratings strictly before it (serve with NEXTWATCH_SERVE_MODELS=evaluation)"
    )


def _model_lines(models: dict[str, Any]) -> list[str]:
    if "served_by" in models:
        return [f"- served by {models['served_by']}: {models['note']}"]
    als, seq, fusion = models["als"], models["sequential"], models["fusion"]
    sources = models["settings_source"]
    return [
        f"- ALS (implicit): factors {als['factors']} ({sources['als_factors']}), regularization "
        f"{als['regularization']} ({sources['als_regularization']}), alpha {als['alpha']} ({sources['als_alpha']}), "
        f"iterations {als['iterations']} ({sources['als_iterations']}); ratings >= {als['min_rating']} as "
        f"positives; {als.get('nnz', 0):,} interactions of {als.get('users', 0):,} users, all before the cutoff",
        f"- sequential (co-visitation in time order): window {seq['window']} ({sources['sequential_window']}), "
        f"backward weight {seq['backward_weight']} ({sources['sequential_backward_weight']}), popularity damping "
        f"{seq['popularity_damping']} ({sources['sequential_popularity_damping']}), top {seq['neighbours']} per "
        f"movie; {seq.get('neighbours_kept', 0):,} neighbours kept",
        f"- popular: {models['popularity']}; recent-popular: the last {models['recent_popular_days']:g} days before "
        f"the cutoff ({sources['recent_popular_days']})",
        f"- hybrid: weighted reciprocal-rank fusion, weights {_weights(fusion['weights'])} "
        f"({sources['fusion_weights']}), rank constant {fusion['rank_constant']:g} "
        f"({sources['fusion_rank_constant']}), top {fusion['depth']} per source, then popular",
        f"- neighbour tables used: {', '.join(models.get('neighbour_tables', [])) or 'none (live stores)'}",
        _tuning_line(models.get("tuned")),
        f"- evaluation build (what `NEXTWATCH_SERVE_MODELS=evaluation` serves): `{models['evaluation_build']}`",
    ]


def _tuning_line(tuned: dict[str, Any] | None) -> str:
    if not tuned:
        return "- not tuned: *default* / *explicit* values come from the settings (run `nextwatch tune`)"
    v = tuned["validation"]
    if not v:
        return f"- *tuned.json* (`{tuned['path']}`): no record of a validation window (not written by `nextwatch tune`)"
    where = (
        "just before this test window"
        if tuned["precedes_this_test_window"]
        else "**before a different test window** (tuned with another protocol or data: run `nextwatch tune` again)"
    )
    return (
        f"- *tuned.json* (`{tuned['path']}`): chosen by {tuned['chosen_by']}; validation window: {v['pairs']} "
        f"pairs from {v['users']} users, {v['first']} .. {v['last']}, {where}; its models trained only on "
        f"ratings before {v['first']}"
    )


def _weights(weights: dict[str, float]) -> str:
    used = {name: w for name, w in weights.items() if w > 0}
    return ", ".join(f"{name} {w:g}" for name, w in sorted(used.items(), key=lambda nw: -nw[1])) or "none"


def plot_hit_ratio(run: EvaluationRun, path: Path) -> None:
    """Bars of HR@k per strategy with their 95% intervals (matplotlib, no display needed)."""
    from matplotlib.figure import Figure

    names = list(run.scores)
    values = [run.scores[n].hit_ratio for n in names]
    lows = [v - run.scores[n].intervals.get("hr", (v, v))[0] for n, v in zip(names, values)]
    highs = [run.scores[n].intervals.get("hr", (v, v))[1] - v for n, v in zip(names, values)]
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.add_subplot()
    bars = axes.bar(names, values, yerr=[lows, highs], capsize=4, color="#4C72B0")
    axes.bar_label(bars, labels=[f"{v:.3f}" for v in values], padding=2, fontsize=8)
    axes.set_ylabel(f"HR@{run.protocol.k}")
    axes.set_title(
        f"Next-item hit ratio, {len(run.pairs):,} pairs / {run.users} users (95% user-bootstrap intervals)", fontsize=10
    )
    axes.tick_params(axis="x", labelrotation=20)
    axes.set_ylim(bottom=0)
    figure.savefig(path, dpi=120, format="png")
