"""The `event` table: what viewers did on the platform (watched, completed, abandoned, rated, not interested).

Embedded default: a SQLite file at the top of the data dir (`events.sqlite`, an input like the ratings, never
inside a build generation, which builds copy and replace), in WAL mode with ``synchronous=FULL``, created by
the first write; no file means no events. No commit runs a checkpoint (``wal_autocheckpoint=0``): a thread of
the store copies the WAL into the database beside the writers (`WalCheckpointer`), and writers take turns on
a file lock (`WriterLock`, shared by every process serving the file) rather than in SQLite's busy wait; the
batches queued while a commit runs are committed together (one fsync) by the next writer.
With ``NEXTWATCH_EVENTS_URL`` the table lives in PostgreSQL or Oracle (sql/oracle/02_schema.sql holds it as
DDL; tests/test_oracle_sql.py keeps them equal). Writes are idempotent by `event_id`: a row already stored is
never written again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
    Insert,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
    event,
    func,
    inspect,
    make_url,
    select,
)
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from services.stores.errors import logged
from services.stores.sqlite_driver import sqlite_driver
from services.stores.upsert import SUPPORTED_DIALECTS, insert_new_statement

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

EVENT_TYPES = ("watched", "completed", "abandoned", "rated", "not_interested")
READ_ONLY = "events are read-only here"

events_metadata = MetaData()
VIEWER_ORDER = ("at", "received", "event_id")  # a user's events, oldest first (ties: in the order received)

event_table = Table(
    "event",
    events_metadata,
    Column("event_id", String(128), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("movie_id", Integer, nullable=False),
    Column("type", String(16), nullable=False),
    Column("rating", Float),
    Column("at", DateTime, nullable=False),
    Column("received", DateTime, nullable=False),
    PrimaryKeyConstraint("event_id", name="pk_event"),
    CheckConstraint(f"type IN ({', '.join(repr(t) for t in EVENT_TYPES)})", name="ck_event_type"),
    # a viewer's events come in order from the index: a read of 200 sorted them in a temporary b-tree for about
    # as long as it took to fetch them (BENCHMARKS.md, session 12)
    Index("ix_event_user_order", "user_id", *VIEWER_ORDER),
)
RETIRED_INDEXES = frozenset({"ix_event_user_at"})  # made by earlier versions: the first write drops them
EVENT_COLUMNS: tuple[str, ...] = tuple(c.name for c in event_table.columns)
SQLITE_INSERT_NEW = (
    f"INSERT INTO event ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))}) "
    "ON CONFLICT (event_id) DO NOTHING"
)
TIME_COLUMNS = ("at", "received")  # the last two of EVENT_COLUMNS: _sqlite_rows formats them
EPOCH = datetime(1970, 1, 1)  # the store's times are naive UTC
MICROSECOND = timedelta(microseconds=1)
SQLITE_VIEWER = f"SELECT movie_id, type, rating, at FROM event WHERE user_id = ? ORDER BY {', '.join(VIEWER_ORDER)}"
# the same rows as ViewerEvents with every time 0, made by SQLite: nothing to parse or build per row
SQLITE_VIEWER_UNTIMED = (
    f"SELECT 0, movie_id, type, rating FROM event WHERE user_id = ? ORDER BY {', '.join(VIEWER_ORDER)}"
)
# pages a connection keeps (KiB when negative): the indexes a batch of 500 touches (event_id, user and time) stay
# in memory as the table grows past SQLite's default 2 MB, instead of being read again for every insert
CACHE_KIB = 32_768
RETRY_SECONDS = 0.5  # after a failed checkpoint, the next waits this long
# past this many pages in the WAL (16 MB: about three batches of 500 on a table of a million events) a checkpoint
# waits for the writers
WAL_LIMIT_PAGES = 4_000


class EventsReadOnly(RuntimeError):
    """The event store cannot be written here (a read-only data dir or file)."""

    def __init__(self) -> None:
        super().__init__(READ_ONLY)


@dataclass(frozen=True)
class StoredEvent:
    """One stored event (times are naive UTC)."""

    event_id: str
    user_id: str
    movie_id: int
    type: str
    rating: float | None
    at: datetime
    received: datetime


STORED_COLUMNS = tuple(event_table.c[f.name] for f in fields(StoredEvent))  # in StoredEvent's order


# what a user's next list needs of one of their events, its time first (a history merges by it): (at in
# microseconds since 1970-01-01 UTC, movie_id, type, rating); a plain tuple (a NamedTuple's constructor would
# add a quarter to reading 200 of them)
ViewerEvent = tuple[int, int, str, float | None]


def _durable_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """WAL, a commit reaches the disk before it returns (synchronous=FULL), no commit runs a checkpoint (the
    store's WalCheckpointer does), and a page cache of CACHE_KIB."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    cursor.close()


_event_values = itemgetter(*EVENT_COLUMNS)
assert EVENT_COLUMNS[-len(TIME_COLUMNS) :] == TIME_COLUMNS


def _current_schema(conn: Connection) -> None:
    """The event table with this version's indexes: made when missing; a table made by an earlier version gets
    the indexes it lacks and loses the retired ones."""
    events_metadata.create_all(conn)
    present = {i["name"] for i in inspect(conn).get_indexes(event_table.name)}
    for index in event_table.indexes:
        if index.name not in present:
            index.create(conn)
    for name in sorted(RETIRED_INDEXES & present):
        conn.exec_driver_sql(f"DROP INDEX {name}")


def _sqlite_rows(rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows' values as SQLAlchemy binds them on SQLite: naive times as 'YYYY-MM-DD HH:MM:SS.ffffff' text
    (each distinct time formatted once: a batch shares its `received`)."""
    texts: dict[datetime, str] = {}

    def text(at: datetime) -> str:
        if at not in texts:
            texts[at] = at.isoformat(" ", "microseconds")
        return texts[at]

    return [(*values[:-2], text(values[-2]), text(values[-1])) for values in map(_event_values, rows)]


class WriterLock:
    """One writer at a time on a SQLite file, across threads and processes: a thread lock, then an exclusive
    flock on ``<file>-writer``. A waiter sleeps in the kernel and goes on as soon as the lock is free, where
    SQLite's busy handler polls, sleeping up to 100 ms between tries. The kernel drops the flock of a killed
    process."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + "-writer")
        self._thread = threading.Lock()
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._thread.acquire()
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread.release()
            raise

    def __exit__(self, *_: object) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread.release()

    def close(self) -> None:
        with self._thread:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class WalCheckpointer:
    """Copies a SQLite file's WAL into the database on a thread of its own, so that no commit waits for a
    checkpoint. Each write wakes it (`wrote`), and it runs a PASSIVE checkpoint (writers go on meanwhile) at
    once, one at a time: the WAL holds about one commit's pages, and a writer that finds all of them copied
    starts the WAL from its beginning again. A writer that starts while a checkpoint still copies the commit
    before it appends instead, and writers that never pause do so every time: past WAL_LIMIT_PAGES pages, the
    checkpoint waits for the writers (``writer``) and copies what the last commit added, and the next writer
    starts over. (A batch of 500 events on a table of a million dirties about 1,250 pages, its keys landing
    all over the indexes: checkpoints half a second apart let 15,000 pages pile up, and a limit of 10,000 then
    copied them with the writers waiting, 100 ms every half second: BENCHMARKS.md, session 10.)"""

    def __init__(self, path: Path, engine: Callable[[], Engine], writer: AbstractContextManager[object]) -> None:
        self.path = path
        self.engine = engine  # the store's, made at its first use
        self.writer = writer
        self._due = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wrote(self) -> None:
        """A commit added to the WAL: checkpoint soon."""
        with self._lock:
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(target=self._run, name="events-checkpoint", daemon=True)
                self._thread.start()
        self._due.set()

    def close(self) -> None:
        """Stop the thread once its checkpoint in progress has ended."""
        with self._lock:
            self._closed.set()
        self._due.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        pages = 0  # in the WAL after the last checkpoint
        while self._due.wait() and not self._closed.is_set():
            self._due.clear()
            try:
                with self.writer if pages >= WAL_LIMIT_PAGES else nullcontext():
                    pages = self.checkpoint()
            except SQLAlchemyError as exc:  # the next write wakes it again, after a pause: not a log line per write
                log.warning("events checkpoint failed: %s", logged(exc))
                self._closed.wait(RETRY_SECONDS)

    def checkpoint(self) -> int:
        """One PASSIVE checkpoint; how many pages the WAL holds (none where the file is gone: no new one)."""
        if not self.path.is_file():
            return 0
        with self.engine().connect() as conn:
            _busy, wal_pages, _copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return int(wal_pages)


@dataclass
class _Queued:
    """A batch's rows as SQLite binds them, waiting for the commit that stores them; then how many were new, or
    the error that failed the transaction."""

    values: list[tuple[Any, ...]]
    done: bool = False
    stored: int = 0
    error: BaseException | None = None


class EventStore:
    """Adds, reads and forgets events through one SQLAlchemy engine, opened at the first call that needs it."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend not in SUPPORTED_DIALECTS:
            raise ValueError(f"unsupported events database {backend!r}: use {', '.join(SUPPORTED_DIALECTS)}")
        file = backend == "sqlite" and parsed.database not in (None, "", ":memory:") and "uri" not in parsed.query
        self.url = url
        self.path = Path(str(parsed.database)).resolve() if file else None  # the SQLite file
        self._engine: Engine | None = None
        self._has_table = False
        self._schema_current = False  # the table and this version's indexes, checked by the first write
        self._lock = threading.Lock()
        # one writer at a time (SQLite's own busy wait sleeps up to 100 ms between tries)
        self._writing: AbstractContextManager[object] = (
            WriterLock(self.path)
            if self.path is not None
            else threading.Lock()
            if backend == "sqlite"
            else nullcontext()
        )
        self._checkpointer = (
            None if self.path is None else WalCheckpointer(self.path, lambda: self.engine, self._writing)
        )
        # SQLite: the batches waiting while a commit runs, committed together by the next writer
        self._queue = threading.Condition()
        self._queued: list[_Queued] = []
        self._leading = False

    @property
    def embedded(self) -> bool:
        """Whether the events live in a SQLite file on this machine (read in WAL mode: never waiting for a writer)."""
        return self.path is not None

    # ---- writes ------------------------------------------------------------------------

    def add(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert the rows (every column of the table) whose event_id is not stored yet, in one transaction
        committed before it returns; how many were new. EventsReadOnly where nothing can be written."""
        if not rows:
            return 0
        self._require_writable()
        if self.engine.dialect.name == "sqlite":
            return self._group_commit(_Queued(_sqlite_rows(rows)))
        with self._begin_writing() as conn:
            statement = insert_new_statement(conn.dialect.name, event_table, "event_id", EVENT_COLUMNS)
            if isinstance(statement, Insert):  # the rows inserted come back, the conflicting ones do not
                return len(conn.execute(statement.returning(event_table.c.event_id), list(rows)).all())
            return int(conn.execute(statement, list(rows)).rowcount)  # Oracle's MERGE: its row count

    def forget(self, user_id: str) -> int:
        """Delete a user's events; how many there were."""
        if not self._exists():
            return 0
        self._require_writable()
        with self._begin_writing() as conn:
            return int(conn.execute(event_table.delete().where(event_table.c.user_id == user_id)).rowcount)

    def _group_commit(self, mine: _Queued) -> int:
        """Store a batch on SQLite with the batches queued while another commit ran, in one transaction (one
        fsync for them all; each batch one executemany, without SQLAlchemy's per-row bind processing); how many
        of its rows were new. A failing transaction fails every batch in it, and none of them is written."""
        with self._queue:
            self._queued.append(mine)
            while self._leading and not mine.done:
                self._queue.wait()
            group: list[_Queued] = []
            if not mine.done:  # no commit is running: this thread commits every batch queued
                self._leading = True
                group, self._queued = self._queued, []
        if mine.done:
            if mine.error is not None:
                raise mine.error  # the group's transaction failed: the same error for every batch in it
            return mine.stored
        try:
            with self._begin_writing() as conn:
                stored = [int(conn.exec_driver_sql(SQLITE_INSERT_NEW, q.values).rowcount) for q in group]
            for queued, count in zip(group, stored, strict=True):
                queued.stored = count
        except BaseException as exc:
            for queued in group:
                queued.error = exc
            raise
        finally:
            with self._queue:
                for queued in group:
                    queued.done = True
                self._leading = False
                self._queue.notify_all()
        return mine.stored

    # ---- reads -------------------------------------------------------------------------

    def of_user(self, user_id: str) -> list[StoredEvent]:
        """A user's events, oldest first (ties: in the order received, then by event_id)."""
        if not self._exists():
            return []
        c = event_table.c
        statement = select(*STORED_COLUMNS).where(c.user_id == user_id).order_by(*(c[n] for n in VIEWER_ORDER))
        with self.engine.connect() as conn:
            return [StoredEvent(*row) for row in conn.execute(statement).all()]  # by position: 2.5x faster

    def viewer(self, user_id: str, *, timed: bool = True) -> list[ViewerEvent]:
        """A user's events as their next list reads them, in the order of `of_user`; not `timed`: every time 0
        (for a viewer with nothing to merge them with by time). On SQLite one statement on the driver's own
        connection (SQLAlchemy's execution and result over 200 rows: 0.26 ms, the driver's 0.19), its times
        parsed here: a third of `of_user`'s time (200 events: ~0.3 ms; untimed, the driver's rows as they come)."""
        if not self._exists():
            return []
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                sql = SQLITE_VIEWER if timed else SQLITE_VIEWER_UNTIMED
                with sqlite_driver(conn, sql) as driver:
                    rows = driver.execute(sql, (user_id,)).fetchall()
                if not timed:
                    return rows
                parse = datetime.fromisoformat  # the text _sqlite_rows (and SQLAlchemy) write
                return [((parse(at) - EPOCH) // MICROSECOND, m, t, r) for m, t, r, at in rows]
            c = event_table.c
            columns = (c.movie_id, c.type, c.rating, c.at)
            statement = select(*columns).where(c.user_id == user_id).order_by(*(c[n] for n in VIEWER_ORDER))
            return [((at - EPOCH) // MICROSECOND if timed else 0, m, t, r) for m, t, r, at in conn.execute(statement)]

    def count(self) -> int:
        """How many events are stored."""
        if not self._exists():
            return 0
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(event_table)) or 0)

    def wrote(self) -> None:
        """A commit on this store's database (an event or another table's row): its WAL is checkpointed soon."""
        if self._checkpointer is not None:
            self._checkpointer.wrote()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        if isinstance(self._writing, WriterLock):
            self._writing.close()
        if self._engine is not None:
            self._engine.dispose()

    # ---- plumbing ----------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The engine, made at first use: read-only (immutable) on a SQLite file whose directory cannot be
        written, since WAL readers would otherwise create files beside it."""
        with self._lock:
            if self._engine is None:
                if self.path is not None and not self._writable():
                    self._engine = create_engine(f"sqlite:///file:{self.path}?mode=ro&immutable=1&uri=true")
                else:
                    self._engine = create_engine(self.url)
                    if self._engine.dialect.name == "sqlite":
                        event.listen(self._engine, "connect", _durable_sqlite)
            return self._engine

    def _writable(self) -> bool:
        assert self.path is not None
        return os.access(self.path.parent, os.W_OK) and (not self.path.exists() or os.access(self.path, os.W_OK))

    def _require_writable(self) -> None:
        if self.path is not None and not self._writable():
            raise EventsReadOnly()

    def _exists(self) -> bool:
        """Whether the table exists (no SQLite file: no, without creating one)."""
        if self.path is not None and not self.path.is_file():
            self._has_table = False  # deleted under a running server: the next write makes it again
            return False
        if not self._has_table:
            with self.engine.connect() as conn:
                self._has_table = inspect(conn).has_table(event_table.name)
        return self._has_table

    @contextmanager
    def _begin_writing(self) -> Iterator[Connection]:
        """A transaction on a database that has the table (created by the first write)."""
        try:
            engine = self.engine
            if not self._schema_current or (self.path is not None and not self.path.is_file()):
                with self._writing, engine.begin() as conn:  # a writer of another process may be making it
                    _current_schema(conn)
                self._has_table = self._schema_current = True
            with self._writing, engine.begin() as conn:
                yield conn
            self.wrote()
        except OperationalError as exc:
            if "readonly" in str(exc.orig) or "read-only" in str(exc.orig):
                raise EventsReadOnly() from exc
            raise

    # ---- reads for the build -----------------------------------------------------------

    def summary(self, after: datetime | None = None) -> EventSummary:
        """How many events are stored, the latest `received`, and how many were received after `after`."""
        if not self._exists():
            return EventSummary(0, None, 0)
        received = event_table.c.received
        with self.engine.connect() as conn:
            count, latest = conn.execute(select(func.count(), func.max(received))).one()
            newer = count if after is None else conn.scalar(select(func.count()).where(received > after))
        return EventSummary(int(count or 0), latest, int(newer or 0))

    def interactions(self) -> tuple[pd.DataFrame, EventSummary]:
        """Every event, read in one statement, as a frame (user_id, movie_id, type, rating, at in Unix seconds),
        in the order of `of_user` within each user, with the summary of exactly those rows."""
        import pandas as pd  # only the build reads events as a frame: the server does not load pandas for it

        c = event_table.c
        columns = ["user_id", "movie_id", "type", "rating", "at", "received"]
        rows: list[Any] = []
        if self._exists():
            statement = select(*(c[name] for name in columns)).order_by(c.user_id, c.at, c.received, c.event_id)
            with self.engine.connect() as conn:
                rows = list(conn.execute(statement).all())
        frame = pd.DataFrame(rows, columns=columns)
        latest = max(row.received for row in rows) if rows else None
        at = pd.to_datetime(frame["at"]).to_numpy("datetime64[s]").astype("int64")
        frame = frame.drop(columns="received").assign(at=at, movie_id=frame["movie_id"].astype("int64"))
        return frame, EventSummary(len(rows), latest, len(rows))


@dataclass(frozen=True)
class EventSummary:
    """How many events are stored, the latest time one was received (naive UTC; None without events), and how
    many were received after a given time."""

    count: int
    latest: datetime | None
    after: int
