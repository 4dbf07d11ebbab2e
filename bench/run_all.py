"""Every 32M benchmark in one run, each stage in a fresh process; renders the BENCHMARKS.md tables.

    .venv/bin/python bench/run_all.py --source /tmp/ml32m-synth --write-benchmarks BENCHMARKS.md
    .venv/bin/python bench/run_all.py --scale 1m --work /tmp/nw-bench1m        # quick, while developing
    .venv/bin/python bench/run_all.py --from-results /tmp/nw-bench32/results.json   # re-render a run

Stages, in order (``--only`` / ``--skip`` pick some): ingest, pairs, catalog, vectors, als, implicit,
sequential, neighbours (bench/offline.py), evaluate, seed (bench/seed_loop.py), edge, local
(bench/vector_index.py), build
(bench/offline.py: ingest..ALS in one process, into a second data dir). Artifacts go under ``--work``
(``data`` is emptied when ingest runs, ``one-process`` when build runs), with one log per stage in
``logs/`` and the figures in ``results.json``. implicit and als alternate ``--als-runs`` times (the
fastest run of each is reported, all are listed), so one burst of someone else's load cannot decide the ratio.
Before each stage, waits (``--max-wait-minutes`` in all) for the 1-minute load average to drop to
``--max-load``; the load at each stage's start and end is recorded.
``--write-benchmarks`` replaces only the blocks between ``<!-- bench/run_all.py:NAME -->`` and
``<!-- /bench/run_all.py:NAME -->`` markers (offline, evaluation, vectors) of that file.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from harness import GB, ROOT, machine, run_stage, wait_for_quiet

TARGETS = {
    "ingest_s": 30,
    "ingest_gb": 4,
    "pairs_s": 20,
    "build_gb": 8,
    "als_ratio": 1.2,
    "eval_total_s": 2,
    "seed_ratio": 20,
    "edge_p50_ms": 5,
    "sequential_s": 60,
    "sequential_gb": 4,
    "neighbours_s": 300,
    "neighbours_gb": 2,
    "neighbours_mb": 150,
}
SEED_COMPARED = ("series", "vector", "series+vector")


def stage_argvs(args: argparse.Namespace, source: Path) -> dict[str, list[str]]:
    """name -> argv (script and arguments) of every stage."""
    data, one = str(args.work / "data"), str(args.work / "one-process")
    proto = ["--min-ratings", str(args.min_ratings), "--pairs", str(args.pairs)]
    return {
        "ingest": ["bench/offline.py", "ingest", "--data-dir", data, "--source", str(source)],
        "pairs": ["bench/offline.py", "pairs", "--data-dir", data, *proto],
        "catalog": ["bench/offline.py", "catalog", "--data-dir", data],
        "vectors": ["bench/offline.py", "vectors", "--data-dir", data],
        "als": ["bench/offline.py", "als", "--data-dir", data],
        "implicit": ["bench/offline.py", "implicit", "--data-dir", data],
        "sequential": ["bench/offline.py", "sequential", "--data-dir", data],
        "neighbours": ["bench/offline.py", "neighbours", "--data-dir", data],
        "evaluate": ["bench/seed_loop.py", "evaluate", "--data-dir", data, *proto],
        "seed": ["bench/seed_loop.py", "seed", "--data-dir", data, "--seed-pairs", str(args.seed_pairs)],
        "edge": ["bench/vector_index.py", "edge", "--data-dir", data],
        "local": [
            "bench/vector_index.py",
            "local",
            "--data-dir",
            data,
            "--queries",
            str(args.local_queries),
            "--filter-queries",
            str(args.local_filter_queries),
        ],
        "build": ["bench/offline.py", "build", "--data-dir", one, "--source", str(source)],
    }


def plan(names: list[str], als_runs: int) -> list[str]:
    """The stage order, with implicit and als alternated `als_runs` times when both are selected."""
    order: list[str] = []
    for name in names:
        if name == "als" and "implicit" in names:
            order += ["implicit", "als"] * als_runs
        elif name != "implicit" or "als" not in names:
            order.append(name)
    return order


def command(argv: list[str]) -> str:
    """How to run one stage by hand from the repo root."""
    return ".venv/bin/python " + shlex.join(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the selected stages; the results (also written to --work/results.json after each stage)."""
    source = args.source or synthesize_once(args.scale, args.work / f"src-{args.scale}")
    argvs = stage_argvs(args, source)
    names = [n for n in argvs if (not args.only or n in args.only) and n not in args.skip]
    out = args.work / "results.json"
    previous_run = json.loads(out.read_text()) if args.resume else None
    if previous_run is not None:  # the same run, continued: its measured stages stay, the rest run
        names = [n for n in names if n not in previous_run["stages"]]
    for producer, sub in (("ingest", "data"), ("build", "one-process")):  # a fresh dir for what gets rebuilt
        if producer in names:
            shutil.rmtree(args.work / sub, ignore_errors=True)
    wait_until = time.monotonic() + args.max_wait_minutes * 60
    load = wait_for_quiet(args.max_load, wait_until - time.monotonic())
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    this_command = " ".join([".venv/bin/python bench/run_all.py", *sys.argv[1:]])
    results: dict[str, Any] = previous_run or {
        "started_utc": now,
        "machine": machine(),
        "loadavg_start": list(os.getloadavg()),
        "load_ok": load <= args.max_load,
        "source": str(source),
        "command": this_command,
        "stages": {},
    }
    if previous_run is not None:
        results["resumed"] = {"utc": now, "command": this_command, "stages": names}
    for name in plan(names, args.als_runs):
        wait_for_quiet(args.max_load, max(0.0, wait_until - time.monotonic()))  # one budget for the whole run
        print(f"# {name}: {command(argvs[name])}", file=sys.stderr, flush=True)
        figures = run_stage(argvs[name], args.work / "logs" / f"{name}.log")
        took = figures.get("seconds", figures["wall_seconds"])
        previous = results["stages"].get(name)
        runs = (previous or {}).get("runs", []) + [
            {"seconds": took, "load1_start": figures["load1_start"], "load1_end": figures["load1_end"]}
        ]
        best = figures if previous is None or took < min(r["seconds"] for r in previous["runs"]) else previous
        results["stages"][name] = {**best, "command": command(argvs[name]), "runs": runs}
        print(
            f"#   {figures['wall_seconds']:.1f} s, peak RSS {figures['peak_rss_bytes'] / GB:.2f} GB",
            file=sys.stderr,
            flush=True,
        )
        out.write_text(json.dumps(results, indent=2))
    results["finished_utc"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out.write_text(json.dumps(results, indent=2))
    return results


def synthesize_once(scale: str, out: Path) -> Path:
    """A synthetic release of `scale` under `out`, generated on first use."""
    from bench.synth.synth import synthesize

    if not (out / "ratings.csv").exists():
        synthesize(scale, out, progress=False)
    return out


# ----------------------------------------------------------------------------------------- rendering


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / GB:.2f} GB"


def _ms(p: dict[str, float]) -> str:
    return f"{p['p50_ms']:.2f} / {p['p99_ms']:.2f} ms (n={p['n']})"


def _ok(met: bool) -> str:
    return "met" if met else "**missed**"


def _code(text: str) -> str:
    return f"`{text}`"


def _best_of(s: dict[str, Any]) -> str:
    """ "best of 2 runs: 101 s, 120 s (load ...)" when a stage ran more than once, else ""."""
    runs = s.get("runs", [])
    if len(runs) < 2:
        return ""
    each = ", ".join(f"{_s(r['seconds'])} (load {r['load1_start']:.1f} -> {r['load1_end']:.1f})" for r in runs)
    return f"; best of {len(runs)} runs: {each}"


def _run_line(results: dict[str, Any]) -> str:
    m, la = results["machine"], results["loadavg_start"]
    quiet = "" if results.get("load_ok", True) else " (still above the --max-load threshold after waiting)"
    resumed = results.get("resumed")
    resumed = (
        f" Resumed {resumed['utc']} for {', '.join(resumed['stages'])}: `{resumed['command']}`." if resumed else ""
    )
    return (
        f"Run {results['started_utc']} -> {results.get('finished_utc', '?')}: {m['nproc']} cores ({m['cpu']}), "
        f"{m['memory_gib']} GiB, Python {m['python']}; load average at start {la[0]:.2f} / {la[1]:.2f} / "
        f"{la[2]:.2f}{quiet}. Data: `{results['source']}`. Command: `{results['command']}` "
        f"(each row's stage runs in its own fresh process; GB = 10^9 bytes of peak RSS).{resumed}"
    )


def render_offline(results: dict[str, Any]) -> str:
    """The "Offline pipeline at 32M" table."""
    st, t = results["stages"], TARGETS
    rows = ["| stage | figure | target | status | load at start / end | command |", "|---|---|---|---|---|---|"]

    def row(name: str, figure: str, target: str = "", status: str = "") -> None:
        s = st[name]
        load = f"{s['load1_start']:.1f} / {s['load1_end']:.1f}"
        rows.append(f"| {name} | {figure} | {target} | {status} | {load} | {_code(s['command'])} |")

    if "ingest" in st:
        s = st["ingest"]
        row(
            "ingest",
            f"{_s(s['seconds'])}, peak {_gb(s['peak_rss_bytes'])}; {s['ratings']:,} ratings, "
            f"{s['users']:,} users, {s['movies']:,} movies -> {s['ratings_parquet_bytes'] / 2**20:.0f} MiB parquet",
            f"<= {t['ingest_s']} s, <= {t['ingest_gb']} GB",
            _ok(s["seconds"] <= t["ingest_s"] and s["peak_rss_bytes"] <= t["ingest_gb"] * GB),
        )
    if "pairs" in st:
        s = st["pairs"]
        row(
            "pairs",
            f"{_s(s['seconds'])} (+ {_s(s['read_seconds'])} parquet read), peak {_gb(s['peak_rss_bytes'])};"
            f" {s['pairs']:,} pairs among {s['popular_movies']:,} movies with >= 1000 ratings",
            f"<= {t['pairs_s']} s",
            _ok(s["seconds"] <= t["pairs_s"]),
        )
    if "catalog" in st:
        s = st["catalog"]
        row(
            "catalog",
            f"{_s(s['seconds'])}, peak {_gb(s['peak_rss_bytes'])}; {s['movies']:,} movies, "
            f"{s['inferred_series']:,} inferred series covering {s['in_series']:,} movies",
        )
    if "vectors" in st:
        s = st["vectors"]
        row(
            "vectors",
            f"{_s(s['seconds'])} (upsert {_s(s['upsert_seconds'])}, HNSW build "
            f"{_s(s['hnsw_seconds'])}), peak {_gb(s['peak_rss_bytes'])}; {s['points']:,} x {s['dim']} "
            "seeded random unit vectors through the real embed step",
        )
    if "implicit" in st:
        s = st["implicit"]
        row(
            "implicit",
            f"{_s(s['seconds'])} fit alone, peak {_gb(s['peak_rss_bytes'])}; {s['nnz']:,} non-zeros, "
            f"{s['factors']} factors, {s['iterations']} iterations{_best_of(s)}",
            "baseline",
        )
    if "als" in st:
        s = st["als"]
        target, status = "", ""
        if "implicit" in st:
            ratio = s["seconds"] / st["implicit"]["seconds"]
            fits = s["fit_seconds"] / st["implicit"]["seconds"]
            target = f"<= {t['als_ratio']}x implicit alone"
            status = f"{_ok(ratio <= t['als_ratio'])} ({ratio:.2f}x; fit vs fit {fits:.2f}x)"
        row(
            "als",
            f"{_s(s['seconds'])} end to end: fit {_s(s['fit_seconds'])} + {_s(s['seconds'] - s['fit_seconds'])}"
            f" outside it (parquet read, CSR build, save), peak {_gb(s['peak_rss_bytes'])}{_best_of(s)}",
            target,
            status,
        )
    if "sequential" in st:
        s = st["sequential"]
        row(
            "sequential",
            f"{_s(s['seconds'])} (co-visitation {_s(s['build_seconds'])}), peak "
            f"{_gb(s['peak_rss_bytes'])}; {s['ratings']:,} ratings, window {s['window']}, {s['neighbours_kept']:,} "
            "neighbours kept",
            f"<= {t['sequential_s']} s, <= {t['sequential_gb']} GB",
            _ok(s["seconds"] <= t["sequential_s"] and s["peak_rss_bytes"] <= t["sequential_gb"] * GB),
        )
    if "neighbours" in st:
        s = st["neighbours"]
        row(
            "neighbours",
            f"{_s(s['seconds'])}, peak {_gb(s['peak_rss_bytes'])}; {', '.join(s['tables'])} tables, "
            f"{s['rows']:,} movies x top {s['n']}, {s['disk_bytes'] / 1e6:.0f} MB on disk",
            f"<= {t['neighbours_s']} s, <= {t['neighbours_gb']} GB, <= {t['neighbours_mb']} MB",
            _ok(
                s["seconds"] <= t["neighbours_s"]
                and s["peak_rss_bytes"] <= t["neighbours_gb"] * GB
                and s["disk_bytes"] <= t["neighbours_mb"] * 1e6
            ),
        )
    build_stages = [n for n in ("ingest", "catalog", "vectors", "als") if n in st]
    if len(build_stages) == 4:
        top = max(build_stages, key=lambda n: st[n]["peak_rss_bytes"])
        peak = st[top]["peak_rss_bytes"]
        rows.append(
            f"| build, per stage | highest stage peak {_gb(peak)} ({top}); "
            f"{_s(sum(st[n]['seconds'] for n in build_stages))} in total | <= {t['build_gb']} GB | "
            f"{_ok(peak <= t['build_gb'] * GB)} | | rows ingest, catalog, vectors, als |"
        )
    if "build" in st:
        s = st["build"]
        steps = ", ".join(f"{k} {_s(v)}" for k, v in s["steps"].items())
        row(
            "build",
            f"one process: {_s(s['seconds'])} ({steps}), peak {_gb(s['peak_rss_bytes'])}",
            f"<= {t['build_gb']} GB",
            _ok(s["peak_rss_bytes"] <= t["build_gb"] * GB),
        )
    return "\n".join([_run_line(results), "", *rows])


def render_evaluation(results: dict[str, Any]) -> str:
    """The "Evaluation at 32M vs seed-style loop" table."""
    st, t = results["stages"], TARGETS
    if "evaluate" not in st:
        return _run_line(results)
    ev, seed = st["evaluate"], st.get("seed")
    rows = [
        f"| strategy | ours: batch time | ours: HR@10 | seed-style loop (per {ev['pairs']:,} pairs) | "
        "seed-style HR@10 | speed-up | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in ev["strategies"].items():
        cells = ["", "", "", ""]
        if seed and name in seed["strategies"]:
            b = seed["strategies"][name]
            seed_seconds = b["seconds_per_pair"] * ev["pairs"]
            ratio = seed_seconds / s["seconds"]
            cells = [
                _s(seed_seconds),
                f"{b['hit_ratio']:.4f}",
                f"{ratio:,.1f}x",
                f">= {t['seed_ratio']}x: {_ok(ratio >= t['seed_ratio'])}",
            ]
        rows.append(f"| {name} | {s['seconds'] * 1e3:,.0f} ms | {s['hit_ratio']:.4f} | " + " | ".join(cells) + " |")
    rows.append(
        f"| **all {len(ev['strategies'])}** | **{_s(ev['seconds'])}** | | | | | <= {t['eval_total_s']} s: "
        f"{_ok(ev['seconds'] <= t['eval_total_s'])} |"
    )
    notes = [
        f"Ours: {_code(ev['command'])} (load at end {ev['load1_end']:.1f}): `evaluate_step` took "
        f"{_s(ev['step_seconds'])} in all: reading the ratings, the pairs, training the pre-cutoff ALS model "
        f"({_s(ev['als_eval_fit_seconds'])} fit), the strategies and the bootstrap intervals; peak "
        f"{_gb(ev['peak_rss_bytes'])}. "
        f"{ev['distinct_prev']:,} distinct previous movies among the {ev['pairs']:,} pairs.",
    ]
    if seed:
        measured = (
            f"timed on all {seed['pairs']:,} pairs"
            if seed["pairs"] >= ev["pairs"]
            else f"timed on the first {seed['pairs']:,} pairs and scaled linearly to {ev['pairs']:,}"
        )
        notes.append(
            f"Seed-style loop: {_code(seed['command'])} (load at end {seed['load1_end']:.1f}), {measured}; "
            f"same catalog (SQLite) and vector store, same pairs."
        )
    return "\n".join([_run_line(results), "", *rows, "", *notes])


def render_vectors(results: dict[str, Any]) -> str:
    """The "Vector index at 87k" table."""
    st, t = results["stages"], TARGETS
    rows = [
        "| engine | points | build | query p50 / p99 | with series filter p50 / p99 | target | command |",
        "|---|---|---|---|---|---|---|",
    ]
    if "edge" in st:
        e, v = st["edge"], st.get("vectors")
        build = f"upsert {_s(v['upsert_seconds'])} + HNSW {_s(v['hnsw_seconds'])}" if v else ""
        mode = f"HNSW, ef {e['hnsw_ef']}" if e["hnsw"] else "exact"
        rows.append(
            f"| qdrant-edge ({mode}) | {e['points']:,} x {e['dim']} | {build} | {_ms(e['query'])} | "
            f"{_ms(e['query_series'])} | p50 <= {t['edge_p50_ms']} ms: "
            f"{_ok(e['query']['p50_ms'] <= t['edge_p50_ms'])} | {_code(e['command'])} |"
        )
        rows.append(f"| qdrant-edge, exact | same | | {_ms(e['exact'])} | {_ms(e['exact_series'])} | | same |")
    if "local" in st:
        lo = st["local"]
        rows.append(
            f"| qdrant-client local (`:memory:`) | {lo['points']:,} x {lo['dim']} | upsert "
            f"{_s(lo['upsert_seconds'])} | {_ms(lo['query'])} | {_ms(lo['query_series'])} | | "
            f"{_code(lo['command'])} |"
        )
    notes = []
    if "edge" in st:
        notes.append(
            f"HNSW recall@10 against exact search on the same queries: {st['edge']['recall_at_10']:.3f} "
            "(seeded uniform random unit vectors have no neighbourhood structure, HNSW's worst case; "
            "bench/vector_recall.py measures recall on clustered vectors)."
        )
    return "\n".join([_run_line(results), "", *rows, "", *notes])


RENDERERS = {"offline": render_offline, "evaluation": render_evaluation, "vectors": render_vectors}


def write_blocks(path: Path, blocks: dict[str, str]) -> None:
    """Replace the text between each block's markers in `path` (re-read right before writing)."""
    text = path.read_text(encoding="utf-8")
    for name, body in blocks.items():
        begin, end = f"<!-- bench/run_all.py:{name} -->", f"<!-- /bench/run_all.py:{name} -->"
        i, j = text.find(begin), text.find(end)
        if i < 0 or j < i:
            raise SystemExit(f"{path}: no {begin} ... {end} block to fill")
        text = text[: i + len(begin)] + "\n" + body + "\n" + text[j:]
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--source", type=Path, help="an existing release dir (e.g. /tmp/ml32m-synth)")
    src.add_argument("--scale", default="32m", help="synthesize this scale under --work when no --source")
    ap.add_argument("--work", type=Path, default=Path("/tmp/nw-bench32"))
    ap.add_argument("--min-ratings", type=int, default=1000)
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--seed-pairs", type=int, default=3000, help="pairs the seed-style loop is timed on")
    ap.add_argument("--als-runs", type=int, default=2, help="alternate implicit and als this often; best of each")
    ap.add_argument("--local-queries", type=int, default=100)
    ap.add_argument("--local-filter-queries", type=int, default=20)
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--skip", nargs="*", default=[])
    ap.add_argument("--max-load", type=float, default=2.5)
    ap.add_argument("--max-wait-minutes", type=float, default=30)
    ap.add_argument("--from-results", type=Path, help="render a saved results.json instead of running")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --work/results.json (after a crash): keep its stages, run the others",
    )
    ap.add_argument("--write-benchmarks", type=Path, help="fill this file's bench/run_all.py blocks")
    args = ap.parse_args()

    results = json.loads(args.from_results.read_text()) if args.from_results else run(args)
    blocks = {name: render(results) for name, render in RENDERERS.items()}
    for name, body in blocks.items():
        print(f"\n<!-- {name} -->\n{body}")
    if args.write_benchmarks:
        write_blocks(
            args.write_benchmarks if args.write_benchmarks.is_absolute() else ROOT / args.write_benchmarks, blocks
        )


if __name__ == "__main__":
    main()
