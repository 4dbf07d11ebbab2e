"""The `exposure` table: which list each answer to a known viewer served (`GET /users/{id}/next`), under which
experiment and variant, and when.

It lives in the events' database (``settings.events_store_url``: events.sqlite at the top of the data dir, or
PostgreSQL/Oracle; sql/oracle/02_schema.sql holds it as DDL, tests/test_oracle_sql.py keeps them equal),
idempotent by `request_id`.

An answer logs its exposure (`log`) without waiting for another writer: in an embedded SQLite file it is
inserted at once unless an event batch holds the write lock; then, and on a database server, the store's
writer thread inserts it (with those logged meanwhile, in one transaction) a moment after the answer.
Reading or forgetting exposures first waits for those logged before (`flush`), closing the store stores the
rest; what a process killed with SIGKILL had handed to its writer is lost (never an acknowledged write). On
SQLite a commit reaches the WAL without an fsync (``synchronous=NORMAL``: it survives the process being
killed, the last commits before a power loss may not), and every EXPOSURES_PER_CHECKPOINT-th wakes the event
store's checkpointer (after every one, its fsyncs cost 1-3 ms of a 200-event viewer's answer: BENCHMARKS.md,
session 11).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Insert,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
    event,
    inspect,
    select,
)
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from services.stores.errors import logged
from services.stores.events import EventStore, event_table, events_metadata
from services.stores.sqlite_driver import sqlite_driver
from services.stores.upsert import insert_new_statement

ITEMS_CHARS = 4000  # the served ids as text: "1,3114,..." (at most this long; HR@10 reads the first 10)

exposures_metadata = MetaData()

exposure_table = Table(
    "exposure",
    exposures_metadata,
    Column("request_id", String(128), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("experiment", String(64)),
    Column("variant", String(64)),
    Column("strategy", String(32), nullable=False),
    Column("items", String(ITEMS_CHARS), nullable=False),
    Column("served", DateTime, nullable=False),
    PrimaryKeyConstraint("request_id", name="pk_exposure"),
    Index("ix_exposure_experiment", "experiment", "served"),
)
EXPOSURE_COLUMNS: tuple[str, ...] = tuple(c.name for c in exposure_table.columns)
SQLITE_INSERT_NEW = (
    f"INSERT INTO exposure ({', '.join(EXPOSURE_COLUMNS)}) VALUES ({', '.join('?' * len(EXPOSURE_COLUMNS))}) "
    "ON CONFLICT (request_id) DO NOTHING"
)
WATCHED = ("watched", "completed")  # the events an exposure's hit is judged on
EXPOSURES_PER_CHECKPOINT = 100  # commits between two wakes of the checkpointer (~300 pages of WAL)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Exposure:
    """One served list (times are naive UTC)."""

    request_id: str
    user_id: str
    experiment: str | None
    variant: str | None
    strategy: str
    items: tuple[int, ...]
    served: datetime


@dataclass(frozen=True)
class Watch:
    """A watched or completed event: who, what, when (naive UTC)."""

    user_id: str
    movie_id: int
    at: datetime


def items_text(movie_ids: Sequence[int]) -> str:
    """The served ids as the table keeps them, cut to whole ids within ITEMS_CHARS."""
    text = ",".join(map(str, movie_ids))
    return text if len(text) <= ITEMS_CHARS else text[: text.rindex(",", 0, ITEMS_CHARS + 1)]


def _nearly_durable_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """WAL, each commit written to the log before it returns (synchronous=NORMAL: no fsync per commit), and no
    commit runs a checkpoint (the event store's checkpointer does)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class ExposureStore:
    """Adds and reads exposures through its own engines on the events' database (made at first use)."""

    def __init__(self, events: EventStore) -> None:
        self.events = events  # the event store of the same database: `watches` reads its table
        self._engines: dict[bool, Engine] = {}  # by whether it waits for the write lock
        self._has_table = False
        self._lock = threading.Lock()
        self._commits = 0
        # exposures logged and not yet stored, for the writer thread (started when first needed)
        self._queue = threading.Condition()
        self._pending: list[Exposure] = []
        self._queued = 0  # exposures handed to the writer so far
        self._stored = 0  # of them, those it has stored (or failed to: one warning line)
        self._writer: threading.Thread | None = None
        self._closing = False

    @property
    def engine(self) -> Engine:
        return self._engine(waits=True)

    def _engine(self, waits: bool) -> Engine:
        """The engine whose connections wait for another writer's lock (SQLite's default busy timeout), or fail
        at once (`waits` False)."""
        with self._lock:
            if waits not in self._engines:
                immediate = {} if waits or not self.events.embedded else {"timeout": 0}
                engine = create_engine(self.events.url, connect_args=immediate)
                if engine.dialect.name == "sqlite":
                    event.listen(engine, "connect", _nearly_durable_sqlite)
                self._engines[waits] = engine
            return self._engines[waits]

    def add(self, exposure: Exposure) -> bool:
        """Insert the exposure now unless its request id is stored already; whether it was new (never on a
        SQLite file whose directory cannot be written: read-only serving logs no exposures)."""
        return self._writable() and self._insert([exposure], waits=True) == 1

    def log(self, exposure: Exposure) -> None:
        """Store the exposure (once per request id) without waiting for another writer: at once in an embedded
        SQLite file that no one else is writing, else by the writer thread a moment later. Never raises: a
        failed insert is one warning line (nothing where the store cannot be written, as `add`)."""
        if not self._writable():
            return
        if self.events.embedded:
            try:
                self._insert([exposure], waits=False)
                return
            except OperationalError:  # another writer holds the lock (or the file failed): the writer waits for it
                pass
            except SQLAlchemyError as exc:
                _warn(1, exc)
                return
        with self._queue:
            if self._closing:
                return
            self._pending.append(exposure)
            self._queued += 1
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_queued, name="exposure-writer", daemon=True)
                self._writer.start()
            self._queue.notify()

    def flush(self) -> None:
        """Wait until every exposure logged so far is stored (or has failed to be)."""
        with self._queue:
            queued = self._queued
            self._queue.wait_for(lambda: self._stored >= queued)

    def _write_queued(self) -> None:
        """The writer thread: what was queued since its last insert, in one transaction, until closed."""
        while True:
            with self._queue:
                self._queue.wait_for(lambda: self._pending or self._closing)
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
                queued = self._queued
            try:
                self._insert(batch, waits=True)
            except SQLAlchemyError as exc:
                _warn(len(batch), exc)
            finally:  # no `flush` waits for a batch that is gone
                with self._queue:
                    self._stored = queued
                    self._queue.notify_all()

    def _writable(self) -> bool:
        return self.events.path is None or os.access(self.events.path.parent, os.W_OK)

    def _insert(self, exposures: Sequence[Exposure], *, waits: bool) -> int:
        """Insert the exposures whose request id is not stored yet, in one transaction; how many were new."""
        rows = [{**x.__dict__, "items": items_text(x.items)} for x in exposures]
        with self._writing(waits) as conn:
            if conn.dialect.name == "sqlite":
                values = [
                    tuple(row[c].isoformat(" ", "microseconds") if c == "served" else row[c] for c in EXPOSURE_COLUMNS)
                    for row in rows
                ]
                with sqlite_driver(conn, SQLITE_INSERT_NEW) as driver:  # 0.17 -> 0.11 ms a logged exposure
                    return int(driver.executemany(SQLITE_INSERT_NEW, values).rowcount)
            statement = insert_new_statement(conn.dialect.name, exposure_table, "request_id", EXPOSURE_COLUMNS)
            if isinstance(statement, Insert):
                return len(conn.execute(statement.returning(exposure_table.c.request_id), rows).all())
            return int(conn.execute(statement, rows).rowcount)

    def forget(self, user_id: str) -> int:
        """Delete a viewer's exposures (those logged so far included); how many there were."""
        self.flush()
        if not self._exists():
            return 0
        with self._writing(waits=True) as conn:
            return int(conn.execute(exposure_table.delete().where(exposure_table.c.user_id == user_id)).rowcount)

    def of_experiment(self, experiment: str) -> list[Exposure]:
        """The experiment's exposures (those logged so far included), oldest first."""
        self.flush()
        if not self._exists():
            return []
        c = exposure_table.c
        statement = select(exposure_table).where(c.experiment == experiment).order_by(c.served, c.request_id)
        with self.engine.connect() as conn:
            return [
                Exposure(**{**row, "items": tuple(int(m) for m in row["items"].split(",") if m)})
                for row in conn.execute(statement).mappings()
            ]

    def watches(self, experiment: str) -> list[Watch]:
        """The watched and completed events of the experiment's viewers, by viewer, oldest first."""
        self.flush()
        if not self._exists():  # the exposure table is only ever made with the event table
            return []
        e, x = event_table.c, exposure_table.c
        viewers = select(x.user_id).where(x.experiment == experiment).distinct()
        statement = (
            select(e.user_id, e.movie_id, e.at)
            .where(e.type.in_(WATCHED), e.user_id.in_(viewers))
            .order_by(e.user_id, e.at, e.received, e.event_id)
        )
        with self.engine.connect() as conn:
            return [Watch(*row) for row in conn.execute(statement).all()]

    def close(self) -> None:
        """Store what was logged, stop the writer thread, close the engines."""
        with self._queue:
            self._closing = True
            self._queue.notify_all()
        if self._writer is not None:
            self._writer.join()
        for engine in self._engines.values():
            engine.dispose()

    def _exists(self) -> bool:
        path = self.events.path
        if path is not None and not path.is_file():
            self._has_table = False
            return False
        if not self._has_table:
            self._has_table = inspect_has(self.engine, exposure_table.name)
        return self._has_table

    @contextmanager
    def _writing(self, waits: bool) -> Iterator[Connection]:
        """A transaction on a database that has the table (created by the first write, with the event table: the
        event store asks a database without it at every read); every EXPOSURES_PER_CHECKPOINT-th commit wakes
        the event store's checkpointer."""
        engine, creating = self._engine(waits), self.engine
        if not self._exists():
            with self._lock, creating.begin() as conn:
                events_metadata.create_all(conn)
                exposures_metadata.create_all(conn)
            self._has_table = True
        with engine.begin() as conn:
            yield conn
        with self._lock:
            self._commits += 1
            due = self._commits % EXPOSURES_PER_CHECKPOINT == 0
        if due:
            self.events.wrote()


def _warn(count: int, exc: SQLAlchemyError) -> None:
    """One line for exposures not stored (never a failed answer)."""
    log.warning("%d exposure(s) not stored: %s: %s", count, type(exc).__name__, logged(exc))


def inspect_has(engine: Engine, table: str) -> bool:
    """Whether the database has the table."""
    with engine.connect() as conn:
        return inspect(conn).has_table(table)
