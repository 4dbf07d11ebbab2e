"""A statement on the SQLite driver's own connection inside a SQLAlchemy one, for the per-request reads and
writes where SQLAlchemy's execution and result layers add a third or more to the statement's own time; its
errors still raise as SQLAlchemy's (sqlite3.OperationalError as sqlalchemy.exc.OperationalError, ...), as
callers expect."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError


@contextmanager
def sqlite_driver(conn: Connection, statement: str) -> Iterator[sqlite3.Connection]:
    """The driver's connection under `conn` (in its transaction, if any) for running `statement`."""
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection), "a SQLite connection"
    try:
        yield driver
    except sqlite3.Error as exc:
        raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc
