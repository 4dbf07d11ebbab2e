"""The API's hardening (issue #20): NUL characters, numbers JSON cannot write, strict ids, body size and read
time, store errors that answer without their details, HEAD, no server paths in answers, the page's headers
and offline /docs."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pipelines.cli import app as cli
from services.api import report_files
from services.api.app import create_app
from services.api.deps import NUL_MESSAGE
from services.api.errors import ECHO_CHARS
from services.settings import Settings
from tests.support.servers import running_server

MAX_BODY = 4096


@pytest.fixture(scope="module")
def client(built_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(built_settings.updated(max_body_bytes=MAX_BODY))) as test_client:
        yield test_client


def detail(response) -> list[dict]:
    body = response.json()
    assert isinstance(body["detail"], list), body
    return body["detail"]


# ---- NUL characters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, url, body, loc",
    [
        ("GET", "/movies?q=%00", None, ["query", "q"]),
        ("GET", "/movies?q=toy%00story&genre=Comedy", None, ["query", "q"]),
        ("GET", "/movies?genre=Com%00edy", None, ["query", "genre"]),
        ("GET", "/search?q=%00", None, ["query", "q"]),
        ("GET", "/genres/%00", None, ["path", "genre"]),
        ("GET", "/users/1%00/next", None, ["path", "user_id"]),
        ("GET", "/movies/1/recommendations?exclude=%00", None, ["query", "exclude"]),
        ("GET", "/user-based/?params=1%00:4", None, ["query", "params"]),
        ("POST", "/next", {"history": [1], "genre": "Comedy\u0000"}, ["body", "genre"]),
        ("POST", "/recommendations/batch", {"movie_ids": [1], "strategy": "\u0000"}, ["body", "strategy"]),
        ("POST", "/users/recommendations", {"ratings": {"1\u0000": 4}}, ["body", "ratings", "1\u0000"]),
    ],
)
def test_a_nul_in_any_text_is_a_one_line_422(
    client: TestClient, method: str, url: str, body: object, loc: list
) -> None:
    response = client.request(method, url, json=body)
    assert response.status_code == 422, response.text
    [error] = detail(response)
    assert error["msg"] == NUL_MESSAGE and error["loc"] == loc and "\n" not in error["msg"]


def test_an_escaped_backslash_is_not_a_nul(client: TestClient) -> None:
    response = client.post("/recommendations/batch", json={"movie_ids": [1], "genre": "\\u0000"})
    assert response.status_code == 422 and "unknown genre" in detail(response)[0]["msg"]


# ---- store errors --------------------------------------------------------------------------------


def test_a_store_error_answers_503_without_its_details_and_logs_one_line(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class DataError(Exception):
        pass

    secret = "[SQL: SELECT movie.movie_id FROM movie WHERE lower(movie_title) LIKE %(p)s]\n[parameters: {'p': 'x'}]"

    def broken(*args: object, **kwargs: object) -> object:
        raise DataError(
            f"invalid byte sequence\n{secret}\n(Background on this error at: https://sqlalche.me/e/20/9h9h)"
        )

    monkeypatch.setattr(client.app.state.runtime.catalog, "search_movies", broken)
    caplog.set_level(logging.WARNING)
    response = client.get("/movies", params={"q": "toy"})
    assert response.status_code == 503 and response.json() == {"detail": "catalog unavailable: DataError"}
    failures = [r for r in caplog.records if "SELECT movie.movie_id" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is None and "\n" not in failures[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


# ---- numbers and ids -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, raw",
    [
        ("/recommendations/batch", '{"movie_ids": [1e400]}'),
        ("/recommendations/batch", '{"movie_ids": [NaN]}'),
        ("/recommendations/batch", '{"movie_ids": [Infinity]}'),
        ("/recommendations/batch", '{"movie_ids": [-Infinity]}'),
        ("/recommendations/batch", '{"movie_ids": [true]}'),
        ("/recommendations/batch", '{"movie_ids": [1.0]}'),
        ("/recommendations/batch", '{"movie_ids": ["1"]}'),
        ("/recommendations/batch", '{"movie_ids": [1], "k": true}'),
        ("/recommendations/batch", '{"movie_ids": [1], "k": NaN}'),
        ("/users/recommendations", '{"ratings": {"1": NaN}}'),
        ("/users/recommendations", '{"ratings": {"1": Infinity}}'),
        ("/users/recommendations", '{"ratings": {"1": 1e400}}'),
        ("/users/recommendations", '{"ratings": {"1": true}}'),
        ("/users/recommendations", '{"ratings": {"\uff11": 4}}'),
        ("/users/recommendations", '{"ratings": {"1_0": 4}}'),
        ("/users/recommendations", '{"ratings": {" 1": 4}}'),
        ("/next", '{"history": [NaN]}'),
        ("/next", '{"history": [{"movie_id": 1, "rating": Infinity}]}'),
        ("/next", '{"history": [true]}'),
    ],
)
def test_numbers_json_cannot_write_and_non_numbers_are_422(client: TestClient, path: str, raw: str) -> None:
    response = client.post(path, content=raw.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    json.loads(response.text)  # strict JSON: no NaN or Infinity in the answer
    assert "NaN" not in response.text and "Infinity" not in response.text


@pytest.mark.parametrize("params", ["%EF%BC%91:3", "1_0:3", "1:0_5", "%201:3", "1:%EF%BC%94", "1:4.", "1:nan"])
def test_the_earlier_services_ratings_take_ascii_digits_only(client: TestClient, params: str) -> None:
    assert client.get(f"/user-based/?params={params}").status_code == 422


def test_exclude_ids_in_a_query_take_ascii_digits_only(client: TestClient) -> None:
    assert client.get("/users/1/next?exclude=1_0").status_code == 422
    assert client.get("/users/1/next?exclude=%EF%BC%91").status_code == 422
    assert client.get("/users/1/next?exclude=2").status_code == 200


# ---- bodies --------------------------------------------------------------------------------------


def test_a_long_input_is_not_echoed_whole(client: TestClient) -> None:
    response = client.post("/recommendations/batch", json={"movie_ids": [1], "genre": "x" * 3000})
    assert response.status_code == 422
    [error] = detail(response)
    assert error["input"] == "x" * ECHO_CHARS + "…" and len(response.content) < 1000


def test_a_long_list_is_not_echoed_whole(client: TestClient) -> None:
    response = client.post("/users/recommendations", json={"ratings": list(range(800))})
    assert response.status_code == 422 and len(response.content) < 1000


def test_a_body_over_the_limit_is_413_before_it_is_read(client: TestClient) -> None:
    body = json.dumps({"ratings": {str(i): 4 for i in range(1, 600)}}).encode()
    assert len(body) > MAX_BODY
    response = client.post("/users/recommendations", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json() == {"detail": f"the request body is over {MAX_BODY} bytes"}
    assert response.headers["connection"] == "close" and response.headers["x-request-id"]


def test_a_streamed_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked, counted as it arrives
        yield b'{"ratings": {'
        for i in range(1, 600):
            yield f'"{i}": 4, '.encode()
        yield b'"600": 4}}'

    response = client.post("/users/recommendations", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_a_body_within_the_limit_is_answered(client: TestClient) -> None:
    assert client.post("/users/recommendations", json={"ratings": {"1": 5}, "k": 3}).status_code == 200


@pytest.mark.integration  # a real server and socket
def test_a_body_sent_half_way_loses_its_connection(built_settings: Settings) -> None:
    with running_server(built_settings.updated(body_timeout_seconds=1.0, access_log=False)) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            started = time.monotonic()
            conn.sendall(
                b"POST /next HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                b'{"history": ['
            )
            answer = b""
            while chunk := conn.recv(4096):  # until the server closes the connection
                answer += chunk
            waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ") and b"not sent within 1 s" in answer
    assert 0.9 < waited < 5


# ---- HEAD, paths, headers, docs ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/", "/evaluation", "/static/app.js"])
def test_head_is_answered_where_get_is(client: TestClient, path: str) -> None:
    response = client.head(path)
    assert response.status_code == 200 and response.content == b""


def test_a_missing_report_names_the_command_not_the_servers_path(
    client: TestClient, built_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(report_files, "report_dir", lambda rt: tmp_path / "absent")
    response = client.get("/evaluation/report.json")
    assert response.status_code == 404 and "`nextwatch evaluate" in response.json()["detail"]
    assert str(tmp_path) not in response.text and str(built_settings.data_dir) not in response.text


@pytest.mark.parametrize("path", ["/", "/evaluation", "/static/app.js", "/static/style.css"])
def test_the_page_is_served_with_security_headers(client: TestClient, path: str) -> None:
    headers = client.get(path).headers
    policy = headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"


def test_the_docs_load_nothing_from_a_cdn(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "cdn." not in html and "https://" not in html.replace("https://fastapi.tiangolo.com", ""), html
    html = client.get("/docs").text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        src = html[: html.index(asset) + len(asset)].rsplit('"', 1)[-1]
        assert src.startswith("/") and client.get(src).status_code == 200


def test_serve_refuses_a_port_out_of_range(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--port", "70000"], env={"NEXTWATCH_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 1 and "api.port" in result.output and "65535" in result.output
