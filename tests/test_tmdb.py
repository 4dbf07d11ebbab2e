"""The TMDB fetcher against a fake TMDB server on 127.0.0.1: auth, rate limit, retries, resume, CLI."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.tmdb.checkpoint import Checkpoint
from pipelines.tmdb.cli import tmdb_app
from pipelines.tmdb.credentials import Credentials
from pipelines.tmdb.errors import (
    CheckpointError,
    MissingCredentials,
    TmdbAuthError,
    TmdbError,
)
from pipelines.tmdb.fetcher import FetchOptions, parse_retry_after
from pipelines.tmdb.runs import run_fetch
from services.settings import Settings
from services.stores.catalog import Catalog
from tests.support.fake_tmdb import (
    API_KEY,
    TOKEN,
    FakeTmdb,
    iter_windows,
    movie,
    toy_story_collection,
    toy_story_records,
    translation,
)
from tests.support.tmdb_data import fast_env, make_data_dir, many_movies, movielens_movies, write_kaggle_csv

BEARER = Credentials(token=TOKEN)
FAST = dict(rate_limit=1000.0, concurrency=4, timeout=2.0, max_retries=3, backoff_base=0.01, backoff_max=0.05)


@pytest.fixture(autouse=True)
def no_real_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither a developer's TMDB credentials nor a .env file in the working directory leak in."""
    for name in ("TMDB_READ_ACCESS_TOKEN", "TMDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def server() -> Iterator[FakeTmdb]:
    fake = FakeTmdb(movies=toy_story_records(), collections={10194: toy_story_collection()})
    with fake:
        yield fake


def options(server: FakeTmdb, **overrides: object) -> FetchOptions:
    return FetchOptions(base_url=server.base_url, **{**FAST, **overrides})


def fetch(
    server: FakeTmdb,
    ids: list[int],
    path: Path,
    credentials: Credentials = BEARER,
    *,
    kind: str = "movie",
    **kwargs: object,
):
    opts = {k: kwargs.pop(k) for k in list(kwargs) if k in FAST}
    return asyncio.run(run_fetch(kind, ids, path, options(server, **opts), credentials, **kwargs))


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def add_plain_movies(server: FakeTmdb, ids: Iterable[int]) -> list[int]:
    for i in ids:
        server.movies[i] = movie(
            i,
            title=f"영화 {i}",
            original_title=f"Movie {i}",
            overview=f"줄거리 {i}",
            ko={"iso_639_1": "ko", "iso_3166_1": "KR", "data": {"title": f"영화 {i}", "overview": f"줄거리 {i}"}},
        )
    return list(ids)


# ---- the fetcher --------------------------------------------------------------------------------


def test_fetches_korean_records_with_the_bearer_token(
    server: FakeTmdb, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.movies[862]["translations"]["translations"].append(translation("fr", "FR", "Toy Story", "Woody ..."))
    path = tmp_path / "tmdb" / "movies.jsonl"
    summary = fetch(server, [862, 863, 10193, 8844, 949, 404404], path)

    assert (summary.fetched, summary.not_found, summary.failed) == (5, 1, 0)
    assert summary.english_fallback == 2  # Toy Story 2 (empty Korean overview) and Heat (no Korean at all)
    assert summary.remaining == 0 and summary.requested == 6
    for seen in server.seen:
        assert seen.authorization == f"Bearer {TOKEN}"
        assert seen.query == {"language": "ko-KR", "append_to_response": "translations"}
    records = {r["tmdb_id"]: r for r in lines(path)}
    assert records[862]["status"] == "ok" and records[862]["data"]["title"] == "토이 스토리"
    assert records[862]["language"] == "ko-KR"
    # only the Korean and English translations are kept (TMDB sends dozens)
    assert [t["iso_639_1"] for t in records[862]["data"]["translations"]["translations"]] == ["ko", "en"]
    assert records[404404]["status"] == "not_found"
    text = path.read_text(encoding="utf-8")
    assert "토이 스토리" in text  # stored readable, not \\u-escaped
    out = capsys.readouterr()
    for where in (text, caplog.text, out.out, out.err, repr(BEARER), str(BEARER)):
        assert TOKEN not in where


def test_api_key_goes_in_the_query_and_never_into_logs_or_errors(
    server: FakeTmdb, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.always[("movie", 863)] = ("status", 500)
    path = tmp_path / "movies.jsonl"
    summary = fetch(server, [862, 863], path, Credentials(api_key=API_KEY), max_retries=1)
    assert summary.fetched == 1 and summary.failed == 1
    assert all(s.query.get("api_key") == API_KEY and s.authorization is None for s in server.seen)
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx's log was exercised ...
    assert API_KEY not in caplog.text  # ... and masked
    assert API_KEY not in path.read_text(encoding="utf-8")

    # connection errors carry no URL (hence no key) either
    dead = FakeTmdb().start()
    base_url = dead.base_url
    dead.stop()
    failed_path = tmp_path / "dead.jsonl"
    summary = asyncio.run(
        run_fetch(
            "movie",
            [1],
            failed_path,
            FetchOptions(base_url=base_url, **{**FAST, "max_retries": 1}),
            Credentials(api_key=API_KEY),
        )
    )
    assert summary.failed == 1
    error = lines(failed_path)[0]["error"]
    assert "ConnectError" in error and API_KEY not in error and API_KEY not in caplog.text


def test_rate_limit_is_respected(server: FakeTmdb, tmp_path: Path) -> None:
    ids = add_plain_movies(server, range(1000, 1030))
    rate = 20.0
    summary = fetch(server, ids, tmp_path / "movies.jsonl", rate_limit=rate, concurrency=8)
    assert summary.fetched == 30
    times = [s.at for s in server.seen]
    assert max(iter_windows(times, 1.0)) <= rate + 2  # no burst: at most rate + 1 per second, +1 for jitter
    assert max(times) - min(times) >= (len(times) - 1) / rate * 0.9
    assert max(iter_windows(times, 0.5)) <= rate / 2 + 2


def test_retries_recover_from_429_5xx_timeouts_and_dropped_connections(
    server: FakeTmdb, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server.scripts[("movie", 862)] = [("status", 429, {"Retry-After": "1"})]
    server.scripts[("movie", 863)] = [("status", 500), ("status", 503)]
    server.scripts[("movie", 10193)] = [("slow", 1.5)]  # beyond the 0.5 s client timeout
    server.scripts[("movie", 8844)] = [("drop",)]
    path = tmp_path / "movies.jsonl"
    summary = fetch(server, [862, 863, 10193, 8844], path, timeout=0.5, max_retries=3)

    assert (summary.fetched, summary.failed) == (4, 0)
    assert summary.retries == 5
    assert [len(server.requests_for("movie", i)) for i in (862, 863, 10193, 8844)] == [2, 3, 2, 2]
    first, second = server.requests_for("movie", 862)
    assert second.at - first.at >= 0.95  # Retry-After honoured
    assert {r["tmdb_id"]: r["status"] for r in lines(path)} == {862: "ok", 863: "ok", 10193: "ok", 8844: "ok"}
    assert "HTTP 429" in caplog.text and TOKEN not in caplog.text


def test_404_is_not_retried_and_malformed_json_or_persistent_errors_are_recorded_after_the_retries(
    server: FakeTmdb, tmp_path: Path
) -> None:
    server.always[("movie", 863)] = ("malformed",)
    server.always[("movie", 10193)] = ("status", 502)
    server.always[("movie", 8844)] = ("status", 403)
    path = tmp_path / "movies.jsonl"
    summary = fetch(server, [862, 404404, 863, 10193, 8844], path, max_retries=2)

    assert (summary.fetched, summary.not_found, summary.failed) == (1, 1, 3)
    assert len(server.requests_for("movie", 404404)) == 1
    assert len(server.requests_for("movie", 863)) == 3  # malformed JSON is a body cut short: retried
    assert len(server.requests_for("movie", 10193)) == 3  # 1 + 2 retries
    assert len(server.requests_for("movie", 8844)) == 1  # other 4xx: not retried
    records = {r["tmdb_id"]: r for r in lines(path)}
    assert records[863]["status"] == "failed" and "malformed JSON" in records[863]["error"]
    assert records[863]["error"].endswith("after 3 attempts")
    assert records[10193]["error"] == "HTTP 502 after 3 attempts"
    assert records[8844]["error"] == "HTTP 403"
    assert summary.failed_total == 3


def test_truncated_bodies_and_reset_connections_are_retried(
    server: FakeTmdb, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server.scripts[("movie", 862)] = [("truncate",)]  # half the JSON, a Content-Length that matches
    server.scripts[("movie", 863)] = [("cut",)]  # half the body, then the connection closes
    server.scripts[("movie", 10193)] = [("reset",)]  # TCP RST instead of an answer
    server.scripts[("movie", 8844)] = [("truncate",), ("reset",), ("cut",)]
    path = tmp_path / "movies.jsonl"
    summary = fetch(server, [862, 863, 10193, 8844], path, max_retries=3)

    assert (summary.fetched, summary.failed, summary.retries) == (4, 0, 6)
    assert [len(server.requests_for("movie", i)) for i in (862, 863, 10193, 8844)] == [2, 2, 2, 4]
    assert {r["tmdb_id"]: r["data"]["title"] for r in lines(path)} == {
        862: "토이 스토리",
        863: "토이 스토리 2",
        10193: "토이 스토리 3",
        8844: "쥬만지",
    }
    assert "malformed JSON" in caplog.text and TOKEN not in caplog.text


def test_a_fetch_against_a_flaky_server_leaves_at_most_0_2_percent_unfetched(
    flaky_data_dir: tuple[Path, list[int]], server: FakeTmdb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,000 ids, 200 of them answered cut short / reset on about half of their attempts; default retries."""
    data_dir, ids = flaky_data_dir
    monkeypatch.setenv("TMDB_READ_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("NEXTWATCH_TMDB_MAX_RETRIES", "5")  # the default
    result = CliRunner().invoke(tmdb_app, ["fetch", "--quiet", "--no-apply", "--concurrency", "8"])
    assert result.exit_code == 0, result.output
    statuses = Checkpoint(data_dir / "tmdb" / "movies.jsonl").statuses()
    unfetched = [i for i in ids if statuses.get(i) != "ok"]
    # an id failing on each of its 6 attempts has odds 1/64: about 3 of the 200 flaky ids
    assert len(unfetched) <= 0.002 * len(ids), unfetched
    assert set(unfetched) <= {i for (_, i) in server.flaky}
    assert len(server.seen) > len(ids)  # the flaky ones were retried inside the run

    server.reset_log()
    result = CliRunner().invoke(tmdb_app, ["fetch", "--quiet", "--no-apply", "--retry-failed"])
    assert result.exit_code == 0, result.output
    assert sorted(set(server.ids_requested())) == sorted(unfetched)
    assert all(s == "ok" for s in Checkpoint(data_dir / "tmdb" / "movies.jsonl").statuses().values())


def test_limit_then_resume_fetches_only_what_is_missing(server: FakeTmdb, tmp_path: Path) -> None:
    ids = add_plain_movies(server, range(2000, 2010))
    path = tmp_path / "movies.jsonl"
    summary = fetch(server, ids, path, limit=3)
    assert summary.fetched == 3 and summary.remaining == 7
    assert sorted(server.ids_requested()) == ids[:3]  # the first N missing, in catalog order
    server.reset_log()
    summary = fetch(server, ids, path)
    assert summary.fetched == 7 and summary.already_done == 3 and summary.remaining == 0
    assert sorted(server.ids_requested()) == ids[3:]
    server.reset_log()
    summary = fetch(server, ids, path)
    assert summary.requested == 0 and server.ids_requested() == []
    assert sorted(r["tmdb_id"] for r in lines(path)) == ids


def test_resume_after_a_cancelled_run_loses_and_duplicates_nothing(server: FakeTmdb, tmp_path: Path) -> None:
    ids = add_plain_movies(server, range(3000, 3040))
    path = tmp_path / "movies.jsonl"

    async def interrupted() -> None:
        enough = asyncio.Event()
        seen: list[int] = []

        def on_record(record: dict) -> None:
            seen.append(record["tmdb_id"])
            if len(seen) >= 8:
                enough.set()

        task = asyncio.create_task(
            run_fetch("movie", ids, path, options(server, rate_limit=100.0, concurrency=4), BEARER, on_record=on_record)
        )
        await enough.wait()
        task.cancel()  # what Ctrl-C does to asyncio.run's main task
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    saved = [r["tmdb_id"] for r in lines(path)]
    assert 8 <= len(saved) < len(ids) and len(set(saved)) == len(saved)
    with path.open("a", encoding="utf-8") as handle:  # a line cut short by a crash
        handle.write('{"tmdb_id": 3039, "status": "o')
    server.reset_log()

    summary = fetch(server, ids, path)
    assert not set(server.ids_requested()) & set(saved)
    assert summary.fetched == len(ids) - len(saved)
    final = [r["tmdb_id"] for r in lines(path)]
    assert sorted(final) == ids and Counter(final).most_common(1)[0][1] == 1


def test_retry_failed(server: FakeTmdb, tmp_path: Path) -> None:
    server.always[("movie", 863)] = ("status", 500)
    path = tmp_path / "movies.jsonl"
    assert fetch(server, [862, 863], path, max_retries=1).failed == 1
    server.reset_log()
    summary = fetch(server, [862, 863], path)
    assert summary.requested == 0 and summary.failed_total == 1 and server.ids_requested() == []
    del server.always[("movie", 863)]
    summary = fetch(server, [862, 863], path, retry_failed=True)
    assert server.ids_requested() == [863] and summary.fetched == 1 and summary.failed_total == 0
    records = lines(path)
    assert sorted(r["tmdb_id"] for r in records) == [862, 863]  # compacted: one line per id
    assert all(r["status"] == "ok" for r in records)


def test_a_run_of_failures_stops_the_fetch(server: FakeTmdb, tmp_path: Path) -> None:
    ids = list(range(5000, 5060))
    for i in ids:
        server.always[("movie", i)] = ("status", 500)
    path = tmp_path / "movies.jsonl"
    with pytest.raises(TmdbError, match="failures in a row"):
        fetch(server, ids, path, max_retries=0)
    assert 25 <= len(lines(path)) < 40  # stopped early; what failed is on record for --retry-failed


def test_options_are_validated(server: FakeTmdb) -> None:
    with pytest.raises(ValueError, match="http"):
        FetchOptions(base_url="api.themoviedb.org")
    with pytest.raises(ValueError):
        options(server, rate_limit=0.0)


def test_refused_credentials_stop_the_run_without_showing_them(server: FakeTmdb, tmp_path: Path) -> None:
    wrong = "wrong-token-do-not-print"
    with pytest.raises(TmdbAuthError) as info:
        fetch(server, [862, 863, 10193], tmp_path / "movies.jsonl", Credentials(token=wrong))
    assert "401" in str(info.value) and wrong not in str(info.value)
    path = tmp_path / "movies.jsonl"
    assert not path.exists() or wrong not in path.read_text()


def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingCredentials, match="TMDB_READ_ACCESS_TOKEN"):
        Credentials.from_settings(Settings())
    monkeypatch.setenv("TMDB_API_KEY", API_KEY)
    assert Credentials.from_settings(Settings()).params() == {"api_key": API_KEY}
    monkeypatch.setenv("TMDB_READ_ACCESS_TOKEN", TOKEN)
    settings = Settings()
    credentials = Credentials.from_settings(settings)
    assert credentials.headers() == {"Authorization": f"Bearer {TOKEN}"} and credentials.params() == {}
    assert TOKEN not in repr(settings) and API_KEY not in repr(settings) and TOKEN not in repr(credentials)


def test_retry_after_parsing() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert parse_retry_after("100000") == 300.0


def test_checkpoint_compaction_keeps_the_last_record_of_each_id(tmp_path: Path) -> None:
    path = tmp_path / "movies.jsonl"
    path.write_text(
        '{"tmdb_id": 1, "status": "failed", "error": "HTTP 500"}\n'
        "not json\n"
        '{"tmdb_id": 2, "status": "not_found"}\n'
        '{"tmdb_id": 1, "status": "ok", "data": {"id": 1}}\n',
        encoding="utf-8",
    )
    # an unreadable line before the last one is damage, not a crash: nothing is dropped silently
    with pytest.raises(CheckpointError, match="line 2 .*nextwatch tmdb repair"):
        Checkpoint(path).statuses()
    assert Checkpoint(path).repair() == 1
    assert (tmp_path / "movies.jsonl.rejected").read_text(encoding="utf-8") == "not json\n"
    assert Checkpoint(path).statuses() == {2: "not_found", 1: "ok"}
    assert Checkpoint(path).compact() == {2: "not_found", 1: "ok"}
    assert [r["tmdb_id"] for r in lines(path)] == [2, 1]
    assert Checkpoint(path).read()[1]["data"] == {"id": 1}
    # a last line cut short by a crash (no newline) is dropped on the next compaction
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"tmdb_id": 3, "status": "not_fo')
    assert Checkpoint(path).compact() == {2: "not_found", 1: "ok"}
    assert [r["tmdb_id"] for r in lines(path)] == [2, 1]


# ---- the command line ---------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: FakeTmdb) -> Path:
    """A data dir with movies.parquet and a loaded catalog; the environment points at the fake server."""
    data = make_data_dir(tmp_path / "data", movielens_movies())
    for name, value in fast_env(data, server).items():
        monkeypatch.setenv(name, value)
    return data


@pytest.fixture
def flaky_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: FakeTmdb) -> tuple[Path, list[int]]:
    """A catalog of 2,000 movies on the fake TMDB; every tenth one is flaky (truncate, cut, reset in turn)."""
    movies = many_movies(2000)
    ids = movies["tmdbId"].astype(int).tolist()
    add_plain_movies(server, ids)
    modes = ("truncate", "cut", "reset")
    server.flaky.update({("movie", i): modes[n % 3] for n, i in enumerate(ids[::10])})
    data = make_data_dir(tmp_path / "data", movies)
    for name, value in fast_env(data, server).items():
        monkeypatch.setenv(name, value)
    return data, ids


def test_cli_fetch_resume_collections_and_catalog(
    data_dir: Path, server: FakeTmdb, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    result = runner.invoke(tmdb_app, ["fetch", "--quiet"])
    assert result.exit_code == 1 and "TMDB_READ_ACCESS_TOKEN" in result.output
    assert "Traceback" not in result.output

    monkeypatch.setenv("TMDB_READ_ACCESS_TOKEN", TOKEN)
    result = runner.invoke(tmdb_app, ["fetch", "--quiet", "--limit", "2", "--no-apply"])
    assert result.exit_code == 0, result.output
    assert "2 fetched" in result.output and "still missing" in result.output
    assert len(lines(data_dir / "tmdb" / "movies.jsonl")) == 2

    result = runner.invoke(tmdb_app, ["fetch", "--quiet", "--concurrency", "3", "--rate-limit", "200"])
    assert result.exit_code == 0, result.output
    # 7 catalog movies have a TMDB id; 238 and 240 (The Godfather) are not on the fake TMDB
    assert "3 fetched, 2 not on TMDB, 0 failed" in result.output
    assert "5 movies updated" in result.output
    assert len(lines(data_dir / "tmdb" / "movies.jsonl")) == 7
    assert TOKEN not in result.output

    catalog = Catalog(f"sqlite:///{data_dir / 'catalog.sqlite'}")
    try:
        assert catalog.get_movie(1)["movie_title"] == "토이 스토리"
        assert catalog.get_movie(1)["series_title"] == "토이 스토리 시리즈"
        assert catalog.get_movie(3114)["overview_language"] == "en"
        assert len(catalog.series_ids(inferred=True)) == 1  # The Godfather's stays

        server.collections[10194] = dict(toy_story_collection(), name="토이 스토리 컬렉션")
        result = runner.invoke(tmdb_app, ["collections", "--quiet"])
        assert result.exit_code == 0, result.output
        assert "1 fetched" in result.output
        assert server.requests_for("collection", 10194)[0].query == {"language": "ko-KR"}
        assert catalog.get_movie(78499)["series_title"] == "토이 스토리 컬렉션"
    finally:
        catalog.close()


def test_cli_import_csv_and_jsonl_and_refuse_pickles(data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    csv_path = write_kaggle_csv(tmp_path / "movies_metadata.csv")
    first = runner.invoke(tmdb_app, ["import", str(csv_path)])
    assert first.exit_code == 0, first.output
    assert "3 movies updated" in first.output and "1 unusable lines skipped" in first.output
    again = runner.invoke(tmdb_app, ["import", str(csv_path)])
    assert again.exit_code == 0 and "3 movies updated" in again.output

    dump = tmp_path / "other.jsonl"
    dump.write_text(
        "".join(
            json.dumps({"tmdb_id": t, "status": "ok", "language": "ko-KR", "data": r}, ensure_ascii=False) + "\n"
            for t, r in toy_story_records().items()
        ),
        encoding="utf-8",
    )
    result = runner.invoke(tmdb_app, ["import", str(dump)])
    assert result.exit_code == 0, result.output
    assert "5 records added to the checkpoint" in result.output
    catalog = Catalog(f"sqlite:///{data_dir / 'catalog.sqlite'}")
    try:
        assert catalog.get_movie(1)["movie_title"] == "토이 스토리"
    finally:
        catalog.close()
    # the imported records count as fetched: only the two Godfather ids are left to fetch
    assert len(lines(data_dir / "tmdb" / "movies.jsonl")) == 5

    pkl = tmp_path / "tmdb_movie_info_kr.pkl"
    pkl.write_bytes(b"\x80\x04K\x01.")
    result = runner.invoke(tmdb_app, ["import", str(pkl)])
    assert result.exit_code == 1 and "pickle" in result.output
