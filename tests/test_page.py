"""The explorer page end to end: a real Chromium (Playwright) against the API served by uvicorn."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest

from pipelines.evaluation.protocol import Protocol
from pipelines.evaluation.report import write_report
from pipelines.evaluation.run import evaluate_step
from services.recommender.registry import strategy_names
from services.settings import Settings
from services.stores.catalog import Catalog
from services.stores.events import EventStore
from services.stores.exposures import Exposure, ExposureStore
from services.stores.generations import resolve_generation
from tests.support.servers import private_copy, running_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KOREAN = {1: "토이 스토리", 3114: "토이 스토리 2", 78499: "토이 스토리 3"}
SCREENSHOTS = Path(__file__).parents[1] / "reports" / "screenshots"
K = 10
TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium (make system-deps)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install '.[test]')")


@dataclass
class Problems:
    """Console errors and failed requests a page produced."""

    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def watch(self, page: sync_api.Page) -> None:
        page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.console.append(str(e)))
        page.on("requestfailed", lambda r: self.requests.append(f"{r.url}: {r.failure}"))
        page.on("response", lambda r: self.requests.append(f"{r.url}: {r.status}") if r.status >= 400 else None)


def _korean_titles(settings: Settings) -> None:
    catalog = Catalog(resolve_generation(settings).catalog_url)
    try:
        catalog.update_movies([{"movie_id": m, "movie_title": t} for m, t in KOREAN.items()])
    finally:
        catalog.close()


@pytest.fixture(scope="module")
def base_url(built_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API over a private copy with Korean Toy Story titles and an evaluation report (cheap protocol)."""
    settings = private_copy(built_settings, tmp_path_factory.mktemp("page") / "data")
    _korean_titles(settings)
    run = evaluate_step(settings, Protocol.from_settings(settings, pairs=400, k=K, resamples=100), progress=False)
    write_report(run, settings.data_dir / "report")
    with running_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
def degraded_url(built_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API over a copy whose Qdrant shard was removed."""
    weights = {"sequential": 1.0, "series": 0.5, "collaborative": 0.25, "vector": 0.25}  # hybrid uses vectors
    settings = private_copy(built_settings, tmp_path_factory.mktemp("page-degraded") / "data", fusion_weights=weights)
    shutil.rmtree(resolve_generation(settings).qdrant_path)
    with running_server(settings) as url:
        yield url


EXPERIMENTS = """
[experiments.next-list]
salt = "page"
control = "hybrid"
variants.hybrid = { share = 0.4, strategy = "hybrid" }
variants.sequential = { share = 0.4, strategy = "sequential" }
variants.series = { share = 0.2, strategy = "series", stopped = true }

[experiments."한국어-실험"]
salt = "page"
control = "hybrid"
variants.hybrid = { share = 1.0, strategy = "hybrid" }
"""
KOREAN_EXPERIMENT = "한국어-실험"


@pytest.fixture(scope="module")
def experiments_url(built_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API with two experiments, hand-made exposures and events of Korean-named viewers over two days (24
    exposures, one every two hours, alternating hybrid and sequential; every third viewer watched another movie
    next) and a hand-made evaluation report holding the offline figures."""
    root = tmp_path_factory.mktemp("page-experiments")
    (root / "experiments.toml").write_text(EXPERIMENTS, encoding="utf-8")
    events_url = f"sqlite:///{root / 'events.sqlite'}"
    settings = private_copy(built_settings, root / "data", experiments=root / "experiments.toml", events_url=events_url)
    offline = {
        "hybrid": {"hr@10": 0.3, "hr@10_ci": [0.25, 0.35]},
        "sequential": {"hr@10": 0.28, "hr@10_ci": [0.23, 0.33]},
    }
    (settings.data_dir / "report").mkdir()
    (settings.data_dir / "report" / "report.json").write_text(json.dumps({"history": {"strategies": offline}}))
    events = EventStore(events_url)
    exposures = ExposureStore(events)
    t0 = datetime(2026, 12, 1, 8)
    rows = []
    for i in range(24):
        user, served = f"시청자-{i}", t0 + timedelta(hours=2 * i)
        variant = "hybrid" if i % 2 == 0 else "sequential"
        exposures.add(Exposure(f"r-{i}", user, "next-list", variant, variant, (100 + i, 200 + i), served))
        watched = 999 if i % 3 == 0 else 100 + i
        at = served + timedelta(minutes=10)
        rows.append(
            {
                "event_id": f"e-{i}",
                "user_id": user,
                "movie_id": watched,
                "type": "completed",
                "rating": None,
                "at": at,
                "received": at,
            }
        )
    events.add(rows)
    exposures.close()
    events.close()
    with running_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def problems() -> Problems:
    return Problems()


@pytest.fixture
def page(browser: sync_api.Browser, problems: Problems) -> Iterator[sync_api.Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ko-KR")
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    problems.watch(tab)
    yield tab
    context.close()


def shot(page: sync_api.Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def wait_for_lists(page: sync_api.Page) -> None:
    """Until every strategy column has its list (or its unavailable notice)."""
    page.wait_for_function(
        "n => document.querySelectorAll('[data-strategy]').length === n && "
        "[...document.querySelectorAll('[data-strategy]')].every(s => s.querySelector('.recs, .message'))",
        arg=len(strategy_names()),
    )


def listed(page: sync_api.Page, strategy: str) -> list[int]:
    return [
        int(v)
        for v in page.locator(f'[data-strategy="{strategy}"] li.rec').evaluate_all(
            "nodes => nodes.map(n => n.dataset.movieId)"
        )
    ]


def open_toy_story(page: sync_api.Page, base_url: str) -> None:
    page.goto(base_url + "/")
    page.fill("#title-q", "토이")
    page.locator("#title-results li.tile", has_text="토이 스토리").first.wait_for()
    page.locator('#title-results li.tile[data-movie-id="1"] a').click()
    page.wait_for_url("**/#/movie/1")
    wait_for_lists(page)


def test_title_search_opens_the_movie_with_every_strategy(
    page: sync_api.Page, base_url: str, problems: Problems
) -> None:
    open_toy_story(page, base_url)
    assert page.locator("#movie-title").inner_text() == "토이 스토리"
    assert page.locator(".original").inner_text() == "Toy Story"
    columns = page.locator("[data-strategy]").evaluate_all("nodes => nodes.map(n => n.dataset.strategy)")
    assert columns[0] == "hybrid" and sorted(columns) == sorted(strategy_names())
    for strategy in columns:
        ids = listed(page, strategy)
        assert len(ids) == K and len(set(ids)) == K and 1 not in ids, (strategy, ids)
    strip = page.locator("#series li.tile").evaluate_all("nodes => nodes.map(n => Number(n.dataset.movieId))")
    assert strip[:2] == [1, 3114]  # release order
    assert page.locator('#series a[aria-current="page"]').count() == 1

    sequel = page.locator('[data-strategy="hybrid"] li.rec[data-movie-id="3114"]')
    sequel.locator("a").focus()  # keyboard focus shows why: Toy Story 2 is hybrid's for its series, among others
    why = sequel.locator(".why")
    assert why.is_visible() and "같은 시리즈" in why.inner_text() and "%" in why.inner_text()
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "movie.png")
    assert problems.console == [] and problems.requests == []


def test_filters_reach_the_api(page: sync_api.Page, base_url: str, problems: Problems) -> None:
    open_toy_story(page, base_url)
    before = listed(page, "hybrid")
    page.fill("#f-exclude", f"{before[0]},{before[1]}")
    page.select_option("#f-genre", "Comedy")
    page.get_by_role("button", name="적용").click()
    page.wait_for_function("() => !document.querySelector('#strategies > .message')")
    wait_for_lists(page)
    after = listed(page, "hybrid")
    assert len(after) == K and not {before[0], before[1]} & set(after)
    assert problems.console == [] and problems.requests == []


def test_meaning_search(page: sync_api.Page, base_url: str, problems: Problems) -> None:
    page.goto(base_url + "/")
    page.fill("#meaning-q", "우주를 배경으로 한 가족 영화")
    page.press("#meaning-q", "Enter")
    page.locator("#meaning-results li.tile").first.wait_for()
    assert page.locator("#meaning-results li.tile").count() == 12
    shot(page, "search.png")
    assert problems.console == [] and problems.requests == []


def test_rate_three_movies(page: sync_api.Page, base_url: str, problems: Problems) -> None:
    page.goto(base_url + "/#/rate")
    for text, movie_id in (("토이", 1), ("Godfather", 858), ("Matrix", 2571)):
        page.fill("#rate-q", text)
        page.locator(f'#rate-results [data-add="{movie_id}"]').click()
    assert page.locator("#picked li.picked").count() == 3
    page.locator("#stars-858-4").focus()  # keyboard: arrows move between the stars of one movie
    page.keyboard.press("ArrowRight")
    assert page.locator("#stars-858-5").is_checked()
    assert page.locator('#picked [data-movie-id="858"] label.on').count() == 5
    page.click("#rate-go")
    page.locator("#user-recs li.rec").first.wait_for()
    ids = [int(v) for v in page.locator("#user-recs li.rec").evaluate_all("ns => ns.map(n => n.dataset.movieId)")]
    assert len(ids) == K and len(set(ids)) == K and not {1, 858, 2571} & set(ids)
    page.locator("#user-recs li.rec a").first.hover()
    assert "%" in page.locator("#user-recs li.rec .why").first.inner_text()  # the rated movies' shares
    shot(page, "rate.png")
    assert problems.console == [] and problems.requests == []


def test_evaluation_page(page: sync_api.Page, base_url: str, problems: Problems) -> None:
    page.goto(base_url + "/evaluation")
    page.locator("#eval-table tbody tr").first.wait_for()
    rows = page.locator("#eval-table tbody th").all_inner_texts()
    assert sorted(rows) == sorted(strategy_names())
    assert "[" in page.locator("#eval-table tbody td").first.inner_text()  # the interval
    page.wait_for_function("() => document.querySelector('#eval-plot').naturalWidth > 0")
    protocol = page.locator("#eval-protocol").inner_text()
    assert "UTC" in protocol or ":" in protocol
    assert len(page.locator("#eval-protocol .hash").inner_text()) == 64
    shot(page, "evaluation.png")
    page.click("#lang")
    assert page.locator('nav a[data-nav="evaluation"]').inner_text() == "Evaluation"
    assert page.locator("#eval-table thead th").first.inner_text() == "strategy"
    assert problems.console == [] and problems.requests == []


def next_ids(page: sync_api.Page) -> list[int]:
    return [
        int(v) for v in page.locator("#next-list li.next-item").evaluate_all("ns => ns.map(n => n.dataset.movieId)")
    ]


def history_ids(page: sync_api.Page) -> list[int]:
    return [int(v) for v in page.locator("#history li.watched").evaluate_all("ns => ns.map(n => n.dataset.movieId)")]


def posted_histories(page: sync_api.Page) -> list[list[int]]:
    """Every POST /next body's history (as ids) the page sends from now on."""
    sent: list[list[int]] = []

    def record(request: sync_api.Request) -> None:
        if request.method == "POST" and request.url.endswith("/next"):
            sent.append([h if isinstance(h, int) else h["movie_id"] for h in request.post_data_json["history"]])

    page.on("request", record)
    return sent


def wait_for_next(page: sync_api.Page, history: list[int]) -> list[int]:
    """Until the next list answers `history` (the page shows only the latest answer); its ids, read in the same
    evaluation (a view re-rendered in between would leave none)."""
    found = page.wait_for_function(
        "h => { const box = document.querySelector('#next-out');"
        " const items = box ? [...box.querySelectorAll('#next-list li.next-item')] : [];"
        " return box && !box.hasAttribute('aria-busy') && box.dataset.history === h && items.length > 0"
        " && items.map(n => Number(n.dataset.movieId)); }",
        arg=",".join(map(str, history)),
    )
    return [int(v) for v in found.json_value()]


def test_continue_watching_from_picked_movies(page: sync_api.Page, base_url: str, problems: Problems) -> None:
    sent = posted_histories(page)
    page.goto(base_url + "/#/movie/1")  # the movie page starts a history: "continue from here"
    page.click("#continue")
    page.wait_for_url("**/#/next")
    page.fill("#next-q", "토이")
    page.locator('#next-results [data-add="3114"]').click()  # then Toy Story 2, in that order
    ids = wait_for_next(page, [1, 3114])
    assert sent[-1] == [1, 3114]
    assert len(ids) == K and len(set(ids)) == K and not {1, 3114} & set(ids)  # nothing of the history comes back
    lines = page.locator("#next-list li.next-item").evaluate_all(
        "ns => ns.map(n => [...n.querySelectorAll('.because-line .chip')].map(c => c.textContent))"
    )
    assert any(set(line) == {KOREAN[1], KOREAN[3114]} for line in lines), lines  # named by their titles
    assert all(line.index(KOREAN[3114]) < line.index(KOREAN[1]) for line in lines if len(line) == 2)  # recent first
    assert page.locator("#history li.watched").last.locator(".badge.latest").count() == 1
    page.locator("#next-list li.next-item").first.hover()  # the history movies that led to it light up
    assert page.locator("#history li.watched.lit").count() >= 1
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "next.png")

    page.locator('#history [data-act="up"][data-id="3114"]').click()  # reorder: the list follows
    wait_for_next(page, [3114, 1])
    assert sent[-1] == [3114, 1]
    assert page.evaluate("document.activeElement.dataset.id") == "3114"  # focus stays with the moved movie
    first = next_ids(page)[0]
    page.locator(f'#next-list [data-watched="{first}"]').click()  # "watched it" appends to the history
    after = wait_for_next(page, [3114, 1, first])
    assert sent[-1] == [3114, 1, first] and first not in after
    page.locator(f'#history [data-act="remove"][data-id="{first}"]').click()
    page.locator('#history [data-act="remove"][data-id="3114"]').click()
    wait_for_next(page, [1])
    assert sent[-1] == [1]
    page.reload()  # the history is kept in the browser
    assert wait_for_next(page, [1])
    page.click("#lang")
    assert page.locator('nav a[data-nav="next"]').inner_text() == "Continue"
    assert "Because you watched" in page.locator("#next-list .because-line").first.inner_text()
    assert problems.console == [] and problems.requests == []


@pytest.fixture(scope="module")
def movielens_user(built_settings: Settings) -> tuple[int, list[int]]:
    """A MovieLens user of the test build with a history of 20-60 ratings, and their movies oldest first."""
    ratings = pd.read_parquet(built_settings.ratings_path)
    counts = ratings.groupby("userId").size()
    user = int(counts[(counts >= 20) & (counts <= 60)].index[0])
    mine = ratings.loc[ratings["userId"] == user].sort_values(["timestamp", "movieId"])
    return user, [int(m) for m in mine["movieId"]]


def test_continue_watching_a_movielens_user(
    page: sync_api.Page, base_url: str, problems: Problems, movielens_user: tuple[int, list[int]]
) -> None:
    user, movies = movielens_user
    page.goto(base_url + "/#/next")
    page.fill("#user-id", str(user))
    page.click("#user-open")
    page.wait_for_url(f"**/#/next?user={user}")
    page.locator("#next-list li.next-item").first.wait_for()
    shown = history_ids(page)
    assert shown == movies[-len(shown) :] and len(shown) < len(movies)  # the latest, in order
    page.click("#history-more")
    assert history_ids(page) == movies
    ids = next_ids(page)
    assert len(ids) == K and not set(movies) & set(ids)  # none of what they rated
    assert page.locator("#next-list .because-line .chip").count() > 0
    assert page.locator("#history-panel h2").inner_text().count(str(user)) == 1
    page.click("#history-more")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "next-user.png")

    page.click("#user-copy")  # an editable copy: the same movies, now asked with POST /next
    page.wait_for_url("**/#/next")
    assert len(wait_for_next(page, movies)) == K
    assert problems.console == [] and problems.requests == []


def viewer_ids(page: sync_api.Page, selector: str) -> list[int]:
    return [int(v) for v in page.locator(selector).evaluate_all("ns => ns.map(n => n.dataset.movieId)")]


def wait_for_viewer(page: sync_api.Page, known: int) -> list[int]:
    """Until the viewer view answers a history of `known` items; the next list's ids."""
    page.wait_for_function(
        "n => { const box = document.querySelector('#viewer-next');"
        " return box && !box.hasAttribute('aria-busy') && box.dataset.known === n &&"
        " box.querySelectorAll('li.next-item').length > 0; }",
        arg=str(known),
    )
    return viewer_ids(page, "#viewer-list li.next-item")


@pytest.fixture(scope="module")
def viewer(built_settings: Settings, movielens_user: tuple[int, list[int]]) -> int:
    """Another MovieLens user of the test build (the viewer tests write events of theirs)."""
    ratings = pd.read_parquet(built_settings.ratings_path)
    counts = ratings.groupby("userId").size()
    return int(next(u for u in counts[(counts >= 20) & (counts <= 60)].index if u != movielens_user[0]))


def known(base_url: str, page: sync_api.Page, user: int) -> int:
    return len(page.request.get(f"{base_url}/users/{user}/history").json()["items"])


def test_a_viewer_records_what_they_watched(
    page: sync_api.Page, base_url: str, problems: Problems, viewer: int
) -> None:
    """Open a MovieLens user, click "watched it" on the first card: a `completed` event is posted, the movie
    leaves the list and heads the history."""
    user = viewer
    rated = known(base_url, page, user)
    posted: list[dict[str, object]] = []
    page.on("request", lambda r: posted.append(r.post_data_json) if r.method == "POST" and "/events" in r.url else None)
    page.goto(base_url + "/#/user")
    page.fill("#viewer-id", str(user))
    page.click("#viewer-open")
    page.wait_for_url(f"**/#/user/{user}")
    first = wait_for_viewer(page, rated)[0]
    assert page.locator("#viewer-history li.watched").first.get_attribute("data-type") == "movielens"
    page.locator("#viewer-list li.next-item").first.locator("button.watched-it").click()
    after = wait_for_viewer(page, rated + 1)
    assert first not in after and len(after) == K
    top = page.locator("#viewer-history li.watched").first
    assert top.get_attribute("data-movie-id") == str(first) and top.get_attribute("data-type") == "completed"
    assert top.locator(".badge.ev").inner_text() == "끝까지 봄"
    [body] = posted
    [sent] = body["events"]  # type: ignore[index]
    assert sent["user_id"] == str(user) and sent["movie_id"] == first and sent["type"] == "completed"
    assert len(sent["event_id"]) >= 32
    shot(page, "viewer.png")
    assert problems.console == [] and problems.requests == []


def test_a_refused_write_is_one_line(page: sync_api.Page, base_url: str, viewer: int) -> None:
    """With API keys set the page's writes are refused (it sends no key): it says so in one line, and keeps
    the list."""
    detail = {"detail": "a write needs a valid key in the X-API-Key header"}
    page.route("**/events", lambda route: route.fulfill(status=401, json=detail))
    page.goto(f"{base_url}/#/user/{viewer}")
    before = wait_for_viewer(page, known(base_url, page, viewer))
    page.locator("#viewer-list li.next-item").first.locator("button.watched-it").click()
    error = page.locator("#viewer-error")
    error.wait_for()
    assert "401" in error.inner_text() and "X-API-Key" in error.inner_text() and "\n" not in error.inner_text()
    assert viewer_ids(page, "#viewer-list li.next-item") == before
    assert page.locator("#viewer-list button.watched-it:not([disabled])").count() == len(before)


def test_evaluation_shows_every_protocol_it_has(page: sync_api.Page, base_url: str, problems: Problems) -> None:
    report = page.request.get(base_url + "/evaluation/report.json").json()
    if not report.get("history"):
        pytest.skip("the evaluation report has no history protocol")
    page.goto(base_url + "/evaluation")
    page.locator("#eval-history tbody tr").first.wait_for()
    assert sorted(page.locator("#eval-history tbody th").all_inner_texts()) == sorted(report["history"]["strategies"])
    assert "[" in page.locator("#eval-history tbody td").first.inner_text()
    assert page.locator("#eval-history-section .paired li").count() >= 1  # hybrid against the others, paired
    if report.get("last_item"):
        rows = page.locator("#eval-last-item tbody th").all_inner_texts()
        assert sorted(rows) == sorted(report["last_item"]["strategies"])
        assert "%" in page.locator("#eval-last-item-section .leak").inner_text()  # its time leakage, stated
    assert page.locator(".jump a").count() == 1 + bool(report.get("history")) + bool(report.get("last_item"))

    older = {k: v for k, v in report.items() if k not in ("history", "last_item")}  # an older report: no sections
    page.route("**/evaluation/report.json", lambda route: route.fulfill(json=older))
    page.reload()
    page.locator("#eval-table tbody tr").first.wait_for()
    assert page.locator("#eval-history, #eval-last-item, .jump").count() == 0
    assert problems.console == [] and problems.requests == []


def test_experiments_list_variants_and_plot(page: sync_api.Page, experiments_url: str, problems: Problems) -> None:
    """#/experiments lists both experiments (one named in Korean); #/experiments/next-list shows each variant's
    figures, the difference to the control, the stopped flag, and one line per variant over time."""
    report = page.request.get(experiments_url + "/experiments/next-list").json()
    page.goto(experiments_url + "/#/experiments")
    page.locator("#exp-list li").first.wait_for()
    names = page.locator("#exp-list li").evaluate_all("ns => ns.map(n => n.dataset.experiment)")
    assert names == ["next-list", KOREAN_EXPERIMENT]
    assert page.locator('#exp-list [data-experiment="next-list"] .badge.warn').count() == 1  # a variant is stopped
    page.locator('#exp-list [data-experiment="next-list"] a').click()
    page.wait_for_url("**/#/experiments/next-list")
    page.locator("#exp-table tbody tr").first.wait_for()
    rows = page.locator("#exp-table tbody tr").evaluate_all("ns => ns.map(n => n.dataset.variant)")
    assert rows == ["hybrid", "sequential", "series"]  # the control first
    hybrid = page.locator('#exp-table tr[data-variant="hybrid"]')
    online = hybrid.locator("td.online").inner_text()
    assert online.startswith(f"{report['variants']['hybrid']['hr@10']:.4f}") and "[" in online
    assert hybrid.locator("td.offline").inner_text() == "0.3000 [0.2500, 0.3500]"
    difference = page.locator('#exp-table tr[data-variant="sequential"] td.difference').inner_text()
    assert f"{abs(report['difference']['hr@10']):.4f}" in difference and "[" in difference
    assert page.locator('#exp-table tr[data-variant="series"] .flag-stopped').count() == 1
    assert page.locator("#exp-plot polyline").count() == 2  # the stopped variant served nothing
    assert page.locator("#exp-plot circle").count() == len(report["over_time"])
    assert page.locator("#exp-plot line.offline").count() == 2
    last_hybrid = [p for p in report["over_time"] if p["variant"] == "hybrid"][-1]
    assert last_hybrid["exposures"] == 12 and last_hybrid["hr@10"] == report["variants"]["hybrid"]["hr@10"]
    shot(page, "experiments.png")
    page.click("#lang")
    assert page.locator("#exp-table thead th").first.inner_text() == "variant"
    page.click("#lang")

    page.goto(f"{experiments_url}/#/experiments/{quote(KOREAN_EXPERIMENT)}")  # a hash change: the same document
    page.wait_for_function("name => document.querySelector('h1')?.textContent === name", arg=KOREAN_EXPERIMENT)
    page.locator("#exp-table tbody tr").first.wait_for()
    assert page.locator("#exp-over-time .message").inner_text() == "아직 판정된 노출이 없습니다."
    assert page.locator('nav a[data-nav="experiments"][aria-current]').count() == 1
    page.set_viewport_size({"width": 390, "height": 844})  # phone width: the table scrolls, the page does not
    page.goto(experiments_url + "/#/experiments/next-list")
    page.locator("#exp-plot").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert problems.console == [] and problems.requests == []


def test_a_late_answer_for_a_left_experiment_does_not_replace_the_next_one(
    page: sync_api.Page, experiments_url: str
) -> None:
    """Leaving an experiment before its answer came (a click, a language switch) and opening another: when the first
    answer arrives at last, the second experiment stays on the page."""
    held: list[sync_api.Route] = []

    def hold(route: sync_api.Route) -> None:
        held.append(route)

    page.route("**/experiments/next-list", hold)
    page.goto(experiments_url + "/#/experiments/next-list")
    page.wait_for_function("() => true")
    assert len(held) == 1  # its answer is on its way
    page.goto(f"{experiments_url}/#/experiments/{quote(KOREAN_EXPERIMENT)}")
    page.wait_for_function("name => document.querySelector('h1')?.textContent === name", arg=KOREAN_EXPERIMENT)
    page.locator("#exp-table tbody tr").first.wait_for()
    with page.expect_response("**/experiments/next-list"):
        held[0].continue_()
    page.evaluate("() => new Promise((done) => setTimeout(done, 100))")  # the late answer's render has run
    assert page.locator("h1").inner_text() == KOREAN_EXPERIMENT
    assert page.locator("#exp-over-time .message").inner_text() == "아직 판정된 노출이 없습니다."
    page.unroute("**/experiments/next-list", hold)


def test_a_late_answer_for_a_left_movie_does_not_replace_the_next_one(page: sync_api.Page, base_url: str) -> None:
    """Every view draws into a pane of its own: Toy Story's details arriving after the page moved on to Toy Story 2
    land nowhere (nor do they ask for its lists or take the title)."""
    held: list[sync_api.Route] = []
    asked: list[str] = []

    def hold(route: sync_api.Route) -> None:
        held.append(route)

    page.route("**/movies/1", hold)
    page.on("request", lambda request: asked.append(request.url))
    page.goto(base_url + "/#/movie/1")
    page.wait_for_function("() => true")
    assert len(held) == 1  # its answer is on its way
    page.goto(base_url + "/#/movie/3114")
    page.wait_for_function("() => document.querySelector('#movie-title')?.textContent === '토이 스토리 2'")
    page.locator('[data-strategy="hybrid"] li.rec').first.wait_for()
    with page.expect_response("**/movies/1"):
        held[0].continue_()
    page.evaluate("() => new Promise((done) => setTimeout(done, 300))")  # the late answer's render has run
    assert page.locator("#movie-title").all_inner_texts() == ["토이 스토리 2"]
    assert page.title().startswith("토이 스토리 2")
    assert not [url for url in asked if "/movies/1/" in url]  # no lists asked for the movie left
    page.unroute("**/movies/1", hold)


def test_an_unknown_experiment_is_one_line(page: sync_api.Page, experiments_url: str) -> None:
    page.goto(experiments_url + "/#/experiments/nope")
    error = page.locator("#main .message.error")
    error.wait_for()
    assert "nope" in error.inner_text() and "\n" not in error.inner_text()


def test_phone_width_continue_watching(browser: sync_api.Browser, base_url: str) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, locale="ko-KR"
    )
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    try:
        tab.goto(base_url + "/#/next")
        for movie_id in (1, 3114):
            tab.fill("#next-q", "토이")
            tab.locator(f'#next-results [data-add="{movie_id}"]').tap()
        wait_for_next(tab, [1, 3114])
        assert tab.evaluate("document.documentElement.scrollWidth") <= 390
        shot(tab, "next-phone.png")
        tab.locator('#history [data-act="down"][data-id="1"]').tap()
        wait_for_next(tab, [3114, 1])
        tab.goto(base_url + "/evaluation")
        tab.locator("#eval-table tbody tr").first.wait_for()
        assert tab.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()


def test_phone_width(browser: sync_api.Browser, base_url: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    try:
        tab.goto(base_url + "/#/movie/1")
        wait_for_lists(tab)
        assert tab.evaluate("document.documentElement.scrollWidth") <= 390
        shot(tab, "movie-phone.png")
        tab.locator('[data-strategy="hybrid"] li.rec a').first.tap()
        tab.wait_for_url("**/#/movie/*")
        assert not tab.url.endswith("#/movie/1")
    finally:
        context.close()


def test_degraded_api_shows_a_notice(page: sync_api.Page, degraded_url: str, problems: Problems) -> None:
    page.goto(degraded_url + "/#/movie/1")
    notice = page.locator("#notice")
    notice.wait_for()
    assert "벡터 저장소" in notice.inner_text()
    wait_for_lists(page)
    assert "벡터 저장소" in page.locator('[data-strategy="hybrid"] .degraded').inner_text()
    assert len(listed(page, "hybrid")) == K
    assert page.locator('[data-strategy="vector"] .message').is_visible()
    assert problems.requests == [f"{degraded_url}/ready: 503"]  # the only failing call, and it is expected
    assert all("503" in message for message in problems.console)


def test_the_page_runs_under_its_content_security_policy(
    page: sync_api.Page, base_url: str, problems: Problems
) -> None:
    page.add_init_script(
        "window.violations = []; document.addEventListener('securitypolicyviolation', "
        "e => window.violations.push(`${e.violatedDirective} ${e.blockedURI}`))"
    )
    response = page.goto(base_url + "/#/movie/1")
    assert response is not None and "default-src 'self'" in response.headers["content-security-policy"]
    wait_for_lists(page)
    page.locator('[data-strategy="hybrid"] li.rec a').first.focus()  # the explanation's bars are styled inline
    assert page.locator(".poster.placeholder").first.evaluate("n => n.style.getPropertyValue('--hue')") != ""
    page.goto(base_url + "/evaluation")
    page.locator("table").first.wait_for()
    assert page.evaluate("window.violations") == [] and problems.console == [] and problems.requests == []


def test_the_api_docs_work_offline(page: sync_api.Page, base_url: str, problems: Problems) -> None:
    outside: list[str] = []

    def local_only(route: sync_api.Route) -> None:
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    page.goto(base_url + "/docs")
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock").count() >= 10 and outside == []
    assert problems.console == []
