"""Where an API request's time goes, without HTTP or a load generator: the app driven through ASGI.

    .venv/bin/python bench/api_inprocess.py --data-dir /tmp/nextwatch-bench-api   # built by bench/api_latency.py

Prints, with hybrid's default answers computed per request and precomputed (NEXTWATCH_PRECOMPUTE_K 0 and
10), how long the app's startup takes (it opens the build, and precomputes), and the mean time per
request of, over the same distinct movies (k=10, the default adult filter):
hybrid's strategy alone (`services.serving.recommend.recommend`); the real route
`GET /movies/{id}/recommendations` (`async def`: on the event loop while the tables answer), also over
bench/api_latency.py's popular mix; and the same
work as a sync twin registered only here (FastAPI runs it on its threadpool), which shows what the
threadpool hop the route avoids would cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.api_latency import workloads
from services.api import deps, views
from services.api.app import create_app
from services.api.schemas import Recommendations
from services.recommender.filters import Filter
from services.serving.recommend import recommend
from services.settings import Settings

TWIN = "/bench/sync-twin/{movie_id}"


def add_sync_twin(app: Any) -> None:
    """The recommendation route's work (hybrid, k=10, adult filter, titles, response model) as a sync route."""

    @app.get(TWIN, response_model=Recommendations)
    def twin(movie_id: int, rt: deps.RuntimeDep) -> Recommendations:
        served = recommend(rt, "hybrid", [movie_id], 10, Filter.of((), None, False))
        titles = app.state.titles.lookup([r.movie_id for r in served.items[0]])
        return Recommendations(
            movie_id=movie_id,
            strategy="hybrid",
            degraded=bool(served.missing),
            missing=served.missing,
            items=views.recommended(served.items[0], titles),
        )


async def call(app: Any, path: str, query: str = "k=10") -> int:
    """One GET through the ASGI app; its status code."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def measure(data_dir: Path, n: int, precompute_k: int) -> dict[str, float]:
    app = create_app(Settings(data_dir=data_dir, access_log=False, reload_poll_seconds=0, precompute_k=precompute_k))
    add_sync_twin(app)
    opening = time.perf_counter()
    async with app.router.lifespan_context(app):
        out: dict[str, float] = {"startup_s": time.perf_counter() - opening}  # opens the build (and precomputes)
        rt = app.state.runtime
        ids = np.random.default_rng(3).choice(rt.facts.movie_ids, 3 * n + 200, replace=False).tolist()
        for m in ids[:200]:  # warm-up
            assert await call(app, f"/movies/{m}/recommendations") == 200
        rules = Filter.of((), None, False)
        started = time.perf_counter()
        for m in ids[200 : 200 + n]:
            recommend(rt, "hybrid", [m], 10, rules)
        out["strategy_ms"] = (time.perf_counter() - started) / n * 1e3
        popular = workloads(rt.facts, n, seed=7)[1]["popular"]  # bench/api_latency.py's popular mix
        for name, route, batch in (
            ("route_ms", "/movies/{}/recommendations", ids[200 + n : 200 + 2 * n]),
            ("route_popular_ms", "/movies/{}/recommendations", popular),
            ("sync_twin_ms", TWIN, ids[200 + 2 * n : 200 + 3 * n]),
        ):
            started = time.perf_counter()
            for m in batch:
                assert await call(app, route.replace("{movie_id}", "{}").format(m)) == 200
            out[name] = (time.perf_counter() - started) / len(batch) * 1e3
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/nextwatch-bench-api"))
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    for precompute_k, how in ((0, "computed per request"), (10, "precomputed when the build is opened")):
        figures = asyncio.run(measure(args.data_dir, args.requests, precompute_k))
        print(
            f"NEXTWATCH_PRECOMPUTE_K={precompute_k} (hybrid's default answers {how}), {args.requests:,} distinct "
            f"movies: app startup {figures['startup_s']:.1f} s; mean per request: hybrid strategy "
            f"{figures['strategy_ms']:.2f} ms; the route (async) in the "
            f"app {figures['route_ms']:.2f} ms (the popular mix {figures['route_popular_ms']:.2f} ms); sync twin "
            f"{figures['sync_twin_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
