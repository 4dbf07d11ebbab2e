"""A fake TMDB API on 127.0.0.1 (a ThreadingHTTPServer in a thread) speaking TMDB's v3 protocol.

Serves ``/3/movie/{id}`` and ``/3/collection/{id}`` from dicts, checks the Bearer token or ``api_key``
(401 like TMDB otherwise), answers 404 for unknown ids, and plays per-id scripts of misbehaviour
(429 with Retry-After, 500, a slow answer, a dropped connection, malformed JSON), flaky ids whose
answers are cut short or whose connection is reset on about half of the attempts (decided by a hash
of (id, attempt), so a run is reproducible), and a latency added to every answer (a slowed server).
Every request is logged with its server-side arrival time.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "test-read-access-token-5ecret"
API_KEY = "test-api-key-5ecret"


@dataclass(frozen=True)
class Seen:
    at: float  # time.monotonic() on arrival
    kind: str  # "movie" | "collection" | "?"
    id: int | None
    query: dict[str, str]
    authorization: str | None


@dataclass
class FakeTmdb:
    token: str | None = TOKEN
    api_key: str | None = API_KEY
    movies: dict[int, dict[str, Any]] = field(default_factory=dict)
    collections: dict[int, dict[str, Any]] = field(default_factory=dict)
    # (kind, id) -> actions played one per request, then normal answers
    scripts: dict[tuple[str, int], list[tuple[Any, ...]]] = field(default_factory=dict)
    # (kind, id) -> an action played on every request
    always: dict[tuple[str, int], tuple[Any, ...]] = field(default_factory=dict)
    # (kind, id) -> how it fails on the attempts `flaky_attempt` picks (about half): "truncate" (the JSON
    # cut in half, with a Content-Length that matches: a re-framing proxy), "cut" (the full Content-Length,
    # half the body, then the connection closes) or "reset" (TCP RST instead of an answer)
    flaky: dict[tuple[str, int], str] = field(default_factory=dict)
    latency: float = 0.0  # seconds added to every answer
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: dict[tuple[str, int], int] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----

    def start(self) -> FakeTmdb:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeTmdb:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ---- what was asked ----

    def requests_for(self, kind: str, tmdb_id: int) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.kind == kind and s.id == tmdb_id]

    def ids_requested(self, kind: str = "movie") -> list[int]:
        with self._lock:
            return [s.id for s in self.seen if s.kind == kind and s.id is not None]

    def reset_log(self) -> None:
        with self._lock:
            self.seen.clear()

    # ---- serving ----

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        segments = parts.path.strip("/").split("/")
        kind, tmdb_id = "?", None
        if (
            len(segments) == 3
            and segments[0] == "3"
            and segments[1] in ("movie", "collection")
            and segments[2].isdigit()
        ):
            kind, tmdb_id = segments[1], int(segments[2])
        authorization = handler.headers.get("Authorization")
        with self._lock:
            self.seen.append(Seen(time.monotonic(), kind, tmdb_id, query, authorization))
            action = None
            if tmdb_id is not None:
                script = self.scripts.get((kind, tmdb_id))
                action = script.pop(0) if script else self.always.get((kind, tmdb_id))
                attempt = self._attempts[(kind, tmdb_id)] = self._attempts.get((kind, tmdb_id), 0) + 1
                mode = self.flaky.get((kind, tmdb_id))
                if action is None and mode is not None and flaky_attempt(kind, tmdb_id, attempt):
                    action = (mode,)
        if self.latency:
            time.sleep(self.latency)

        authorised = (self.token is not None and authorization == f"Bearer {self.token}") or (
            self.api_key is not None and query.get("api_key") == self.api_key
        )
        if not authorised:
            return _json(
                handler,
                401,
                {
                    "success": False,
                    "status_code": 7,
                    "status_message": "Invalid API key: You must be granted a valid key.",
                },
            )
        if tmdb_id is None:
            return _json(
                handler,
                404,
                {
                    "success": False,
                    "status_code": 34,
                    "status_message": "The resource you requested could not be found.",
                },
            )
        if action is not None:
            name = action[0]
            if name == "status":  # ("status", code, {headers})
                code, headers = action[1], (action[2] if len(action) > 2 else {})
                return _json(
                    handler,
                    code,
                    {"success": False, "status_code": 25 if code == 429 else 11, "status_message": "scripted"},
                    headers,
                )
            if name == "slow":  # ("slow", seconds): answer normally, too late
                time.sleep(action[1])
            elif name == "drop":  # close the connection without an answer
                handler.close_connection = True
                return
            elif name == "malformed":
                return _raw(handler, 200, b'{"id": 1, "title": "\xed\x86\xa0\xec\x9d\xb4 ')
            elif name == "reset":
                handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                handler.connection.close()
                handler.close_connection = True
                return
            elif name in ("truncate", "cut"):
                body = _body(self._record(kind, tmdb_id))
                half = body[: len(body) // 2]
                handler.close_connection = name == "cut"
                return _raw(handler, 200, half, length=len(half) if name == "truncate" else len(body))
        record = self._record(kind, tmdb_id)
        if record is None:
            return _json(
                handler,
                404,
                {
                    "success": False,
                    "status_code": 34,
                    "status_message": "The resource you requested could not be found.",
                },
            )
        return _json(handler, 200, record)

    def _record(self, kind: str, tmdb_id: int) -> dict[str, Any] | None:
        return (self.movies if kind == "movie" else self.collections).get(tmdb_id)


def flaky_attempt(kind: str, tmdb_id: int, attempt: int) -> bool:
    """Whether attempt number `attempt` (1, 2, ...) of a flaky id misbehaves: a fair coin, reproducible."""
    return hashlib.sha256(f"{kind}/{tmdb_id}/{attempt}".encode()).digest()[0] < 128


def _body(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _json(handler: BaseHTTPRequestHandler, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
    _raw(handler, code, _body(payload), headers)


def _raw(
    handler: BaseHTTPRequestHandler,
    code: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    length: int | None = None,
) -> None:
    try:
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json;charset=utf-8")
        handler.send_header("Content-Length", str(len(body) if length is None else length))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True


# ---- TMDB-shaped records -----------------------------------------------------------------------


def translation(lang: str, country: str, title: str = "", overview: str = "", tagline: str = "") -> dict:
    return {
        "iso_3166_1": country,
        "iso_639_1": lang,
        "name": lang,
        "english_name": lang,
        "data": {"title": title, "overview": overview, "tagline": tagline, "homepage": "", "runtime": 0},
    }


def movie(
    tmdb_id: int,
    *,
    title: str,
    original_title: str,
    overview: str = "",
    tagline: str = "",
    ko: dict | None = None,
    en: dict | None = None,
    collection: tuple[int, str] | None = None,
    release_date: str = "",
    runtime: int = 0,
    imdb_id: str | None = None,
    adult: bool = False,
    original_language: str = "en",
    poster_path: str | None = None,
) -> dict:
    """A `/3/movie/{id}?language=ko-KR&append_to_response=translations` answer."""
    translations = [t for t in (ko, en) if t is not None]
    return {
        "adult": adult,
        "backdrop_path": None,
        "budget": 0,
        "genres": [],
        "homepage": "",
        "id": tmdb_id,
        "imdb_id": imdb_id,
        "original_language": original_language,
        "original_title": original_title,
        "overview": overview,
        "popularity": 1.0,
        "poster_path": poster_path,
        "release_date": release_date,
        "runtime": runtime,
        "status": "Released",
        "tagline": tagline,
        "title": title,
        "video": False,
        "vote_average": 7.0,
        "vote_count": 100,
        "belongs_to_collection": None
        if collection is None
        else {"id": collection[0], "name": collection[1], "poster_path": None, "backdrop_path": None},
        "translations": {"translations": translations},
    }


TOY_STORY_SERIES = (10194, "토이 스토리 시리즈")


def toy_story_records() -> dict[int, dict]:
    """Korean records of Toy Story 1-3 (one with an English-only overview) and two more."""
    return {
        862: movie(
            862,
            title="토이 스토리",
            original_title="Toy Story",
            release_date="1995-10-30",
            runtime=81,
            overview="우디는 앤디가 가장 아끼는 카우보이 인형이다.",
            tagline="장난감들의 신나는 모험",
            ko=translation(
                "ko", "KR", "토이 스토리", "우디는 앤디가 가장 아끼는 카우보이 인형이다.", "장난감들의 신나는 모험"
            ),
            en=translation(
                "en",
                "US",
                "Toy Story",
                "Led by Woody, Andy's toys live happily in his room.",
                "The adventure takes off!",
            ),
            collection=TOY_STORY_SERIES,
            imdb_id="tt0114709",
            poster_path="/uXDfjJbdP4ijW5hWSBrPrlKpxab.jpg",
        ),
        863: movie(  # Korean title, empty Korean overview and tagline: English fallback
            863,
            title="토이 스토리 2",
            original_title="Toy Story 2",
            release_date="1999-10-30",
            runtime=92,
            ko=translation("ko", "KR", "토이 스토리 2"),
            en=translation(
                "en",
                "US",
                "Toy Story 2",
                "Andy heads off to Cowboy Camp, leaving his toys to their own devices.",
                "The toys are back!",
            ),
            collection=TOY_STORY_SERIES,
            imdb_id="tt0120363",
        ),
        10193: movie(
            10193,
            title="토이 스토리 3",
            original_title="Toy Story 3",
            release_date="2010-06-16",
            runtime=103,
            overview="앤디가 대학에 가면서 장난감들은 탁아소로 보내진다.",
            ko=translation("ko", "KR", "토이 스토리 3", "앤디가 대학에 가면서 장난감들은 탁아소로 보내진다."),
            en=translation("en", "US", "Toy Story 3", "Woody, Buzz and the rest of Andy's toys ..."),
            collection=TOY_STORY_SERIES,
            imdb_id="tt0435761",
        ),
        8844: movie(
            8844,
            title="쥬만지",
            original_title="Jumanji",
            release_date="1995-12-15",
            runtime=104,
            overview="주사위를 굴리면 정글이 찾아온다.",
            ko=translation("ko", "KR", "쥬만지", "주사위를 굴리면 정글이 찾아온다."),
            en=translation("en", "US", "Jumanji", "When siblings Judy and Peter discover an enchanted board game..."),
        ),
        949: movie(  # no Korean translation at all: TMDB puts the English title at the top level
            949,
            title="Heat",
            original_title="Heat",
            release_date="1995-12-15",
            runtime=170,
            en=translation("en", "US", "Heat", "Obsessive master thief Neil McCauley leads a top-notch crew."),
        ),
    }


def toy_story_collection() -> dict:
    return {
        "id": TOY_STORY_SERIES[0],
        "name": TOY_STORY_SERIES[1],
        "overview": "",
        "poster_path": None,
        "parts": [
            {"id": 862, "title": "토이 스토리", "release_date": "1995-10-30"},
            {"id": 863, "title": "토이 스토리 2", "release_date": "1999-10-30"},
            {"id": 10193, "title": "토이 스토리 3", "release_date": "2010-06-16"},
            {"id": 301528, "title": "토이 스토리 4", "release_date": "2019-06-19"},
        ],
    }


def iter_windows(times: list[float], width: float) -> Iterator[int]:
    """How many timestamps fall in each window [t, t + width) starting at each timestamp."""
    ordered = sorted(times)
    j = 0
    for i, start in enumerate(ordered):
        while j < len(ordered) and ordered[j] < start + width:
            j += 1
        yield j - i
