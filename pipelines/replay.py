"""`nextwatch replay`: play the evaluation's test window through a running API, as the platform would.

The window is the history protocol's: the test pairs (the latest `pairs` next-item pairs) and, for each of
their viewers, every rating from the test cutoff on. In time order ((timestamp, userId, movieId)), each
rating that is a test pair's target is first asked for (`GET /users/{id}/next?k=10`: an exposure under the
viewer's variant), then every rating is posted as a `completed` event (`POST /events`, arriving now; the
ratings since the last question go in one batch, sent before the next question). Against
`nextwatch serve --evaluation` (models and known ratings cut at the test cutoff) the service then sees each
viewer's history exactly as the history protocol gives it, so each variant's online HR@10 estimates its
offline one. Replay into an events database of its own: the events it posts join the viewers' histories.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from pipelines.evaluation.protocol import Protocol, next_item_pairs
from pipelines.steps import read_ingested, require_ingested
from services.settings import Settings

WINDOWS = ("test",)
K = 10
MAX_BATCH = 500  # NEXTWATCH_MAX_EVENTS' default


@dataclass(frozen=True)
class Step:
    """One rating of the window: its viewer, movie and time, and whether it is a test pair's target."""

    user: int
    movie: int
    timestamp: int
    target: bool


def window_steps(settings: Settings, protocol: Protocol, users: int | None = None) -> list[Step]:
    """The test window's ratings in time order (of `users` viewers drawn with the protocol's seed; all without)."""
    require_ingested(settings)
    ratings = read_ingested(settings, settings.ratings_path, ["userId", "movieId", "timestamp"])
    pairs = next_item_pairs(ratings, protocol.min_ratings, protocol.pairs)
    if pairs.empty:
        raise ValueError("no test pairs to replay: run `nextwatch evaluate` to see why")
    viewers = np.unique(pairs["userId"].to_numpy(np.int64))
    if users is not None and users < len(viewers):
        viewers = np.sort(np.random.default_rng(protocol.seed).choice(viewers, users, replace=False))
    cutoff = int(pairs["timestamp"].min())
    window = ratings.loc[(ratings["timestamp"] >= cutoff) & ratings["userId"].isin(viewers)]
    targets = pairs[["userId", "movieId", "timestamp"]].drop_duplicates().assign(target=True)
    window = window.merge(targets, how="left", on=["userId", "movieId", "timestamp"])
    window = window.assign(target=window["target"].notna()).sort_values(["timestamp", "userId", "movieId"])
    return [
        Step(int(u), int(m), int(t), bool(x))
        for u, m, t, x in window[["userId", "movieId", "timestamp", "target"]].itertuples(index=False)
    ]


def replay(
    client: httpx.Client,
    steps: list[Step],
    *,
    speed: float = 0.0,
    run: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Play the steps through the API at `client`'s base URL (speed X: X times the real gaps; 0: no waiting);
    returns {"experiments": {name: report}}, the service's reports at the end."""
    run = run or f"{time.time_ns():x}"
    previous: int | None = None
    pending: list[dict[str, Any]] = []
    for number, step in enumerate(steps, 1):
        if speed > 0 and previous is not None and step.timestamp > previous:
            time.sleep((step.timestamp - previous) / speed)
        previous = step.timestamp
        if step.target:
            _post_events(client, pending)
            _call(client, "GET", f"/users/{step.user}/next", params={"k": K})
        # zero-padded: the events of one batch arrive at one time and are ordered by event_id
        event_id = f"replay-{run}-{number:09d}"
        pending.append({"event_id": event_id, "user_id": str(step.user), "movie_id": step.movie, "type": "completed"})
        if progress is not None:
            progress(number, len(steps))
    _post_events(client, pending)
    listed = _call(client, "GET", "/experiments")["experiments"]
    return {"experiments": {report["name"]: report for report in listed}}


def _post_events(client: httpx.Client, pending: list[dict[str, Any]]) -> None:
    """Post the pending events (in batches of at most MAX_BATCH) and empty the list."""
    for start in range(0, len(pending), MAX_BATCH):
        _call(client, "POST", "/events", json={"events": pending[start : start + MAX_BATCH]})
    pending.clear()


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """One API call's JSON; a 429 waits its Retry-After and tries again, another error stops the replay."""
    while True:
        response = client.request(method, path, **kwargs)
        if response.status_code != 429:
            break
        time.sleep(float(response.headers.get("Retry-After", "1")))
    if response.is_error:
        detail = " ".join(response.text.split())[:300]
        raise RuntimeError(f"{method} {path}: {response.status_code} {detail}")
    return response.json()


def report_lines(reports: dict[str, Any]) -> Iterator[str]:
    """Each experiment's report as a few lines of text."""
    for name, report in reports["experiments"].items():
        yield f"experiment {name} (control {report['control']}; horizon {report['horizon_hours']:g} h)"
        for variant, v in report["variants"].items():
            online = _figure(v["hr@10"], v["hr@10_ci"])
            offline = _figure(v["offline_hr@10"], v["offline_hr@10_ci"])
            flags = " DEGRADED (missing " + ", ".join(v["missing"]) + ")" if v["degraded"] else ""
            flags += " STOPPED" if v["stopped"] else ""
            yield (
                f"  {variant:<16} {v['strategy']:<14} exposures {v['exposures']:>6,}  hits {v['hits']:>6,}  "
                f"HR@10 {online}  offline {offline}{flags}"
            )
        for d in report["differences"]:
            yield f"  {d['variant']} - {d['against']}: HR@10 {_figure(d['hr@10'], d['ci'], signed=True)}"


def _figure(value: float | None, interval: list[float] | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{value:+.4f}" if signed else f"{value:.4f}"
    return f"{text} [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else text
