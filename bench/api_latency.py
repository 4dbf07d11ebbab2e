"""Benchmark of the HTTP API: `hybrid` recommendations at the server and under a load generator, against
the same requests done the seed's way (one SQL query for the series, one vector query per request, no
caching), measured in the same run and the same server process.

The data: an 87,585-movie catalogue built by the real pipeline steps (ingest, catalog, TMDB import of the
synthetic Korean metadata, ALS on the full ratings) from the MovieLens-32M-shaped synthetic release in
``--source`` (generated with bench.synth when missing), except that the vectors are seeded random
unit vectors of dimension 384 instead of multilingual-e5-small embeddings (embedding 87k texts takes
~25 minutes on 2 cores). Everything is cached in ``--data-dir``; a second run only serves and measures.

Then, for each workload (uniform: distinct movies; popular: drawn in proportion to rating counts) and
each ``--connections`` value: a fresh uvicorn worker on 127.0.0.1 (empty caches), a 5 s warm-up on other
movies, and `wrk` (Debian package) on loopback for ``--duration`` seconds per endpoint. Server-side
latencies come from the access log (one JSON line per request, tagged with the X-Request-ID the load
generator sets), CPU from /proc, client throughput and errors from wrk. Also measured in-process: what
the store time limits (thread-pool hops) cost.

    .venv/bin/python bench/api_latency.py                      # build once, then 8 runs of 60 s
    .venv/bin/python bench/api_latency.py --write BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import numpy as np
from fastapi import FastAPI, HTTPException, Request

from services.settings import Settings

DIM = 384
SEED_ROUTE = "/bench/seed-style/{movie_id}"


class RandomUnitBackend:
    """Stand-in for the embedding model: a seeded random unit vector per text (same text, same vector)."""

    name = "bench-random"
    model = f"random-unit-{DIM}"
    dim = DIM

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
            out[row] = v / np.linalg.norm(v)
        return out

    embed_queries = embed_passages


def build(settings: Settings, source: Path) -> None:
    """The real offline steps over the synthetic 32M release, with random vectors (each step idempotent)."""
    from pipelines.embeddings.vectors import build_vectors
    from pipelines.steps import catalog_step, ingest_step, neighbours_step, train_step
    from pipelines.tmdb.apply import apply_records
    from pipelines.tmdb.mapping import read_dump
    from services.stores.build_state import BuildState
    from services.stores.catalog import Catalog
    from services.stores.embedding_cache import EmbeddingCache
    from services.stores.vectors import open_vector_store

    if not (source / "ratings.csv").exists():
        from bench.synth.synth import synthesize

        _say(f"generating the 32M-shaped release in {source}")
        synthesize("32m", source)
    _say("ingest")
    ingest_step(settings, progress=False)
    if catalog_step(settings) is not None or not (settings.data_dir / "bench-tmdb.done").exists():
        _say("catalog: TMDB import of the synthetic Korean metadata")
        import pandas as pd

        dump = read_dump(source / "tmdb_metadata.csv", "ko")
        movies = pd.read_parquet(settings.movies_path, columns=["movieId", "title", "year"])
        catalog = Catalog(settings.catalog_url)
        try:
            apply_records(catalog, dump.ok_payloads(), language="ko", movies=movies)
        finally:
            catalog.close()
        (settings.data_dir / "bench-tmdb.done").touch()
    _say("vectors (random unit vectors; HNSW build takes minutes the first time)")
    catalog, store = Catalog(settings.catalog_url), open_vector_store(settings)
    cache = EmbeddingCache(settings.embedding_cache_path)
    try:
        build_vectors(
            catalog,
            store,
            RandomUnitBackend(),
            cache,
            BuildState(settings.build_dir),
            state_key=settings.vectors_state_key,
            progress=False,
        )
    finally:
        cache.close()
        store.close()
        catalog.close()
    _say("ALS on the full ratings")
    train_step(settings, progress=False)
    _say("sequential model on the full ratings")
    _say("neighbour tables (exact vector and ALS top 100 of every movie)")
    neighbours_step(settings, progress=False)


def guard_overhead(settings: Settings, ids: Sequence[int], k: int = 10) -> dict[str, float]:
    """In-process p50/p99 (ms) of hybrid's recommend_batch with and without the store time limits
    (neighbour cache off, nothing precomputed, distinct movies: every request runs the fusion)."""
    from services.recommender.filters import Filter
    from services.serving.runtime import open_runtime

    out: dict[str, float] = {}
    rules = Filter.of(include_adult=False)
    no_cache = settings.updated(neighbour_cache_size=0, precompute_k=0)
    for label, serving in (("direct", False), ("guarded", True)):
        runtime = open_runtime(no_cache, serving=serving)
        try:
            hybrid = runtime.strategies["hybrid"]
            for m in ids[:200]:
                hybrid.recommend_batch([m], k, filter=rules)
            times = []
            for m in ids:
                started = time.perf_counter()
                hybrid.recommend_batch([m], k, filter=rules)
                times.append(time.perf_counter() - started)
        finally:
            runtime.close()
        out[f"{label}_p50"], out[f"{label}_p99"] = (float(np.percentile(times, q) * 1000) for q in (50, 99))
    return out


def bench_app() -> FastAPI:
    """The API plus the seed-style endpoint (uvicorn --factory target; settings from NEXTWATCH_*)."""
    from services.api.app import create_app

    app = create_app(Settings())

    @app.get(SEED_ROUTE, include_in_schema=False)
    def seed_style(request: Request, movie_id: int, k: int = 10) -> dict[str, Any]:
        """Seed 002's series+vector, store by store: SQL for the movie, SQL for its series, one vector
        retrieve + one vector query, SQL for the titles; nothing in memory, no time limits."""
        rt = request.app.state.runtime
        request.state.strategy = "seed-style"
        row = rt.catalog.get_movie(movie_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"movie {movie_id} not found")
        ids: list[int] = []
        if row["series_id"] is not None:
            ids = [r["movie_id"] for r in rt.catalog.series_members(row["series_id"]) if r["movie_id"] != movie_id][:k]
        vector = rt.vectors.vectors([movie_id]).get(movie_id) if len(ids) < k else None
        if vector is not None:
            hits = rt.vectors.search(vector, k, exclude=[movie_id, *ids])
            ids += [m for m, _ in hits][: k - len(ids)]
        titles = rt.catalog.titles(ids)
        return {"movie_id": movie_id, "items": [{"movie_id": m, "title": titles.get(m, "")} for m in ids]}

    return app


def wrk_script(path: Path, ids: Sequence[int], template: str, tag: str) -> Path:
    """A wrk Lua script cycling through the ids, tagging each request's X-Request-ID."""
    script = path / f"{tag}.lua"
    script.write_text(
        "local ids = {" + ",".join(map(str, ids)) + "}\n"
        "local n = 0\n"
        "request = function()\n"
        "  n = n + 1\n"
        f'  local path = string.gsub("{template}", "{{id}}", ids[(n % #ids) + 1])\n'
        f'  return wrk.format("GET", path, {{["X-Request-ID"] = "{tag}-" .. n}})\n'
        "end\n"
    )
    return script


def run_wrk(base: str, script: Path, seconds: int, connections: int) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "errors": errors + non2xx,
        "raw": out,
    }


def server_latencies(log_path: Path, tag: str) -> tuple[np.ndarray, int]:
    """Server-side durations (ms) of the requests tagged `tag`, and how many were not 200."""
    times, bad = [], 0
    prefix = f"{tag}-"
    with log_path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            if str(entry.get("request_id", "")).startswith(prefix):
                times.append(entry["duration_ms"])
                bad += entry["status"] != 200
    return np.asarray(times), bad


def serve(settings: Settings, port: int, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "NEXTWATCH_DATA_DIR": str(settings.data_dir), "NEXTWATCH_ACCESS_LOG": "true"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "bench.api_latency:bench_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        stderr=log_path.open("w"),
        stdout=subprocess.DEVNULL,
    )
    return wait_until_ready(server, port, log_path)


def wait_until_ready(server: subprocess.Popen, port: int, log_path: Path, seconds: float = 300) -> subprocess.Popen:
    """The server once its /ready answers 200; RuntimeError (and the server stopped) when it exits or times out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: see {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"the server did not become ready in {seconds:g} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(pid: int) -> float:
    """CPU time so far of a server and its live child processes (`serve --workers N`'s workers)."""
    total = cpu_seconds(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:  # its parent
                total += cpu_seconds(int(stat.parent.name))
        except (OSError, ValueError, IndexError):  # a process that ended meanwhile
            continue
    return total


def workloads(facts: Any, n: int, seed: int) -> tuple[list[int], dict[str, list[int]]]:
    """Warm-up ids, and the measured request sequences: "uniform" (distinct movies, none of the warm-up
    ones: nothing repeats within a cycle) and "popular" (drawn in proportion to rating counts: how often movies are
    watched, so the head repeats)."""
    rng = np.random.default_rng(seed)
    ids = np.asarray(facts.movie_ids, dtype=np.int64)
    shuffled = rng.permutation(ids)
    counts = np.asarray(facts.rating_counts, dtype=np.float64) + 1.0
    popular = rng.choice(ids, size=n, replace=True, p=counts / counts.sum())
    return shuffled[:1000].tolist(), {"uniform": shuffled[1000 : 1000 + n].tolist(), "popular": popular.tolist()}


def measure(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from services.stores.catalog import Catalog

    catalog = Catalog(settings.catalog_url)
    facts = catalog.movie_facts()
    catalog.close()
    warm_ids, loads = workloads(facts, args.ids, args.seed)
    result: dict[str, Any] = {
        "movies": len(facts.movie_ids),
        "series_members": sum(s is not None for s in facts.series_ids),
        "ids": args.ids,
        "duration": args.duration,
        "load_before": os.getloadavg(),
        "runs": [],
        "distinct_popular": len(set(loads["popular"])),
    }
    _say("in-process: store time limits on / off")
    result["guards"] = guard_overhead(settings, loads["uniform"][:2000])
    work = Path(tempfile.mkdtemp(prefix="nextwatch-bench-"))
    base = f"http://127.0.0.1:{args.port}"
    endpoints = {
        "hybrid": "/movies/{id}/recommendations?strategy=hybrid&k=10",
        "seed": SEED_ROUTE.replace("{movie_id}", "{id}") + "?k=10",
    }
    for workload, ids in loads.items():
        for connections in args.connections:
            log_path = work / f"server-{workload}-{connections}.log"
            server = serve(settings, args.port, log_path)  # a fresh process: nothing cached yet
            try:
                for tag, template in endpoints.items():
                    run_wrk(base, wrk_script(work, warm_ids, template, f"warm{tag}"), 5, connections)
                for tag, template in endpoints.items():
                    _say(f"load: {tag}, {workload} ids, {connections} connections, {args.duration} s")
                    label = f"{tag}{workload}{connections}"
                    cpu = cpu_seconds(server.pid)
                    client = run_wrk(base, wrk_script(work, ids, template, label), args.duration, connections)
                    cpu = cpu_seconds(server.pid) - cpu
                    time.sleep(1)  # let the last access-log lines reach the file
                    times, bad = server_latencies(log_path, label)
                    run = {
                        "endpoint": tag,
                        "workload": workload,
                        "connections": connections,
                        "rps": client["rps"],
                        "requests": client["requests"],
                        "errors": client["errors"] + bad,
                        "p50": float(np.percentile(times, 50)),
                        "p90": float(np.percentile(times, 90)),
                        "p99": float(np.percentile(times, 99)),
                        "max": float(times.max()),
                        "cpu_ms": cpu * 1000 / max(len(times), 1),
                    }
                    result["runs"].append(run)
                    _say(json.dumps(run))
            finally:
                server.terminate()
                server.wait(timeout=30)
    result["load_after"] = os.getloadavg()
    shutil.rmtree(work, ignore_errors=True)
    return result


def report(r: dict[str, Any], command: str) -> str:
    g = r["guards"]
    runs = {(run["workload"], run["connections"], run["endpoint"]): run for run in r["runs"]}
    rows, ratios = [], []
    for (workload, connections, endpoint), run in runs.items():
        name = "`hybrid`" if endpoint == "hybrid" else "seed-style"
        rows.append(
            f"| {workload} | {connections} | {name} | {run['rps']:.0f} | {run['p50']:.2f} | {run['p90']:.2f} | "
            f"{run['p99']:.2f} | {run['max']:.1f} | {run['cpu_ms']:.2f} | {run['requests']:,} | {run['errors']} |"
        )
        if endpoint == "hybrid" and (workload, connections, "seed") in runs:
            s = runs[(workload, connections, "seed")]
            ratios.append(
                f"| {workload} | {connections} | {run['rps'] / s['rps']:.2f}x | {s['p50'] / run['p50']:.2f}x | "
                f"{s['p99'] / run['p99']:.2f}x | {s['cpu_ms'] / run['cpu_ms']:.2f}x |"
            )
    load = "load average {:.1f} before, {:.1f} after".format(r["load_before"][0], r["load_after"][0])
    return (
        "\n".join(
            [
                "## API",
                "",
                f"`{command}` (wrk is the Debian package: `apt-get install -y wrk`)",
                "",
                f"{r['movies']:,} movies ({r['series_members']:,} in a series), 384-d vectors in the embedded Qdrant "
                "(qdrant-edge, HNSW, ef 128), ALS (64 factors) trained on all 32M synthetic ratings, SQLite catalog; "
                "one "
                f"uvicorn worker on 127.0.0.1, restarted for every workload x connections pair (empty caches), 5 s "
                f"warm-up on other movies, then `wrk -t1 -cN` on loopback for {r['duration']} s per row; every request "
                f"`k=10`. Workloads of {r['ids']:,} requests (cycled): **uniform** = distinct movies drawn uniformly "
                "from the catalogue (none repeats within a cycle); **popular** = movies drawn in "
                f"proportion to their rating counts, i.e. to how often they are watched ({r['distinct_popular']:,} "
                f"distinct). 2 cores shared with other engineers' work ({load}).",
                "",
                "| workload | connections | endpoint | req/s (wrk) | server p50 ms | p90 ms | p99 ms | max ms "
                "| server CPU ms/req | requests | errors |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
                *rows,
                "",
                "Targets for `hybrid` (p50 <= 1 ms, p99 <= 5 ms at the server, >= 1,000 req/s, no errors): "
                + "; ".join(_targets(run) for run in r["runs"] if run["endpoint"] == "hybrid")
                + ".",
                "",
                "| workload | connections | throughput hybrid / seed | p50 seed / hybrid | p99 seed / hybrid "
                "| CPU seed / hybrid |",
                "|---|---|---|---|---|---|",
                *ratios,
                "",
                "Server latency = from the request reaching the app to the end of its response (the access log's "
                "`duration_ms`, every request of the run, matched by the X-Request-ID wrk sets); server CPU = the "
                "uvicorn process's user + system time over the run divided by its requests; errors = socket errors, "
                "non-2xx answers and non-200 access-log lines.",
                "",
                "**seed-style** answers the same requests the way seed 002 did, store by store, nothing cached: a SQL "
                "query for the movie, one for its series, one vector retrieve + one vector query, one SQL query for "
                "the titles, no time limits. **hybrid** (this API) checks the id, the series and the filters (adult "
                "by default) in memory, takes titles from a startup snapshot, fuses its sources (default weights: "
                "sequential 1, series 0.5, collaborative 0.25) from the build's neighbour tables and the in-memory "
                "sequential model — no search on the hot path — and would ask a store live (under a time limit, "
                "behind an LRU of `NEXTWATCH_NEIGHBOUR_CACHE_SIZE` movies) only for what a table cannot answer. "
                "Its default request (k=10, the adult filter: every request here) is answered from hybrid's "
                "answers for every movie, computed by the same code when the server opened the build "
                "(`NEXTWATCH_PRECOMPUTE_K`; the startup time is in the log).",
                "",
                f"Cost of the time limits (in-process, hybrid's strategy alone, 2,000 distinct movies, no cache): p50 "
                f"{g['direct_p50']:.2f} ms without, {g['guarded_p50']:.2f} ms with (p99 {g['direct_p99']:.2f} / "
                f"{g['guarded_p99']:.2f} ms).",
                "",
                "Caveats: the vectors are seeded random unit vectors, not multilingual-e5-small embeddings "
                "(embedding 87k overviews takes ~25 min on 2 cores). The load generator runs on the same 2 cores as "
                "the server, so at most about one core is left for the one uvicorn worker.",
            ]
        )
        + "\n"
    )


def _targets(run: dict[str, Any]) -> str:
    checks = {
        "p50": run["p50"] <= 1,
        "p99": run["p99"] <= 5,
        "throughput": run["rps"] >= 1000,
        "errors": run["errors"] == 0,
    }
    missed = [name for name, ok in checks.items() if not ok]
    return f"{run['workload']} x {run['connections']}: " + ("all met" if not missed else "missed " + ", ".join(missed))


def write_section(path: Path, section: str) -> None:
    """Replace (or append) the "## API" section of a markdown file, leaving the other sections alone."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## API\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/nextwatch-bench-api"))
    parser.add_argument("--source", type=Path, default=Path("/tmp/ml32m-synth"))
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument(
        "--connections",
        type=lambda v: [int(c) for c in v.split(",")],
        default=[1, 4],
        help="comma-separated: one run per endpoint for each",
    )
    parser.add_argument("--ids", type=int, default=20_000)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--write", type=Path, help="put the report into this markdown file's API section")
    args = parser.parse_args()
    if shutil.which("wrk") is None and not args.build_only:
        sys.exit("wrk not found: apt-get install -y wrk")
    settings = Settings(data_dir=args.data_dir, source=str(args.source))
    build(settings, args.source)
    if args.build_only:
        return
    result = measure(settings, args)
    section = report(result, "python bench/api_latency.py " + " ".join(sys.argv[1:]))
    print(section)
    if args.write:
        write_section(args.write, section)


if __name__ == "__main__":
    main()
