"""The `exposure` table: which list each answer to a known viewer served (`GET /users/{id}/next`), under which
experiment and variant, and when.

It lives in the events' database (``settings.events_store_url``: events.sqlite at the top of the data dir, or
PostgreSQL/Oracle; sql/oracle/02_schema.sql holds it as DDL, tests/test_oracle_sql.py keeps them equal). One
insert per answer, idempotent by `request_id`. On SQLite the commit reaches the WAL before the answer
(``synchronous=NORMAL``: it survives the process being killed; the last commits before a power loss may not
survive, where an fsync per answer would cost more than the answer itself).
"""

from __future__ import annotations

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

from services.stores.events import EventStore, event_table, events_metadata
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
    """Adds and reads exposures through its own engine on the events' database (made at first use)."""

    def __init__(self, events: EventStore) -> None:
        self.events = events  # the event store of the same database: `watches` reads its table
        self._engine: Engine | None = None
        self._has_table = False
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = create_engine(self.events.url)
                if self._engine.dialect.name == "sqlite":
                    event.listen(self._engine, "connect", _nearly_durable_sqlite)
            return self._engine

    def add(self, exposure: Exposure) -> bool:
        """Insert the exposure unless its request id is stored already; whether it was new (never on a SQLite
        file whose directory cannot be written: read-only serving logs no exposures)."""
        if self.events.path is not None and not os.access(self.events.path.parent, os.W_OK):
            return False
        row = {**exposure.__dict__, "items": items_text(exposure.items)}
        with self._writing() as conn:
            if conn.dialect.name == "sqlite":
                values = [row[c].isoformat(" ", "microseconds") if c == "served" else row[c] for c in EXPOSURE_COLUMNS]
                return conn.exec_driver_sql(SQLITE_INSERT_NEW, tuple(values)).rowcount == 1
            statement = insert_new_statement(conn.dialect.name, exposure_table, "request_id", EXPOSURE_COLUMNS)
            if isinstance(statement, Insert):
                return len(conn.execute(statement.returning(exposure_table.c.request_id), [row]).all()) == 1
            return int(conn.execute(statement, [row]).rowcount) == 1

    def forget(self, user_id: str) -> int:
        """Delete a viewer's exposures; how many there were."""
        if not self._exists():
            return 0
        with self._writing() as conn:
            return int(conn.execute(exposure_table.delete().where(exposure_table.c.user_id == user_id)).rowcount)

    def of_experiment(self, experiment: str) -> list[Exposure]:
        """The experiment's exposures, oldest first."""
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
        if self._engine is not None:
            self._engine.dispose()

    def _exists(self) -> bool:
        path = self.events.path
        if path is not None and not path.is_file():
            self._has_table = False
            return False
        if not self._has_table:
            self._has_table = inspect_has(self.engine, exposure_table.name)
        return self._has_table

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction on a database that has the table (created by the first write, with the event table: the
        event store asks a database without it at every read); the event store's checkpointer is told of it."""
        engine = self.engine
        if not self._exists():
            with self._lock, engine.begin() as conn:
                events_metadata.create_all(conn)
                exposures_metadata.create_all(conn)
            self._has_table = True
        with engine.begin() as conn:
            yield conn
        self.events.wrote()


def inspect_has(engine: Engine, table: str) -> bool:
    """Whether the database has the table."""
    with engine.connect() as conn:
        return inspect(conn).has_table(table)
