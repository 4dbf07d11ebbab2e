"""The batched upsert (and insert-if-new) statement of each supported database (executed with executemany).

SQLite and PostgreSQL: ``INSERT ... ON CONFLICT (key) DO UPDATE`` (``DO NOTHING``). Oracle: ``MERGE`` written
as text with typed bind parameters, since SQLAlchemy has no Oracle upsert construct. Only the columns a batch
names are written, so partial rows update those columns and leave the others alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Executable, Insert, Table, TextClause, bindparam, text

SUPPORTED_DIALECTS = ("sqlite", "postgresql", "oracle")


def upsert_statement(dialect: str, table: Table, key: str, columns: Sequence[str]) -> Executable:
    """Insert-or-update of rows naming ``columns`` (including ``key``) into ``table`` on ``dialect``."""
    columns = _checked(table, key, columns)
    if dialect == "oracle":
        return oracle_merge(table, key, columns)
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"no upsert for {dialect!r}: the catalog supports {', '.join(SUPPORTED_DIALECTS)}")
    insert = _insert(dialect, table)
    updates = {c: insert.excluded[c] for c in columns if c != key}
    if not updates:
        return insert.on_conflict_do_nothing(index_elements=[key])
    return insert.on_conflict_do_update(index_elements=[key], set_=updates)


def insert_new_statement(dialect: str, table: Table, key: str, columns: Sequence[str]) -> Insert | TextClause:
    """Insert of rows naming ``columns`` whose ``key`` is not in ``table`` yet; the others are left as stored."""
    columns = _checked(table, key, columns)
    if dialect == "oracle":
        return oracle_merge(table, key, columns, update=False)
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"no insert for {dialect!r}: supported are {', '.join(SUPPORTED_DIALECTS)}")
    return _insert(dialect, table).on_conflict_do_nothing(index_elements=[key])


def _insert(dialect: str, table: Table) -> Any:
    """The dialect's INSERT with ON CONFLICT (its module imported on first use: a SQLite server never loads
    PostgreSQL's, a tenth of a second of its start)."""
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    from sqlalchemy.dialects import postgresql

    return postgresql.insert(table)


@cache
def oracle_merge(table: Table, key: str, columns: tuple[str, ...], *, update: bool = True) -> TextClause:
    """``MERGE INTO table t USING (SELECT :c AS c, ... FROM dual) s ON (t.key = s.key) ...``, one bind per column
    (without ``update``, rows already stored are left alone).

    Built once per (table, columns); names come from the Table, values only ever through binds.
    """
    columns = _checked(table, key, columns)
    others = [c for c in columns if c != key] if update else []
    parts = [
        f"MERGE INTO {table.name} t",
        f"USING (SELECT {', '.join(f':{c} AS {c}' for c in columns)} FROM dual) s",
        f"ON (t.{key} = s.{key})",
    ]
    if others:
        parts.append(f"WHEN MATCHED THEN UPDATE SET {', '.join(f't.{c} = s.{c}' for c in others)}")
    parts.append(f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) VALUES ({', '.join(f's.{c}' for c in columns)})")
    return text("\n".join(parts)).bindparams(*(bindparam(c, type_=table.c[c].type) for c in columns))


def _checked(table: Table, key: str, columns: Sequence[str]) -> tuple[str, ...]:
    """The column names, each a real column of the table, the key among them."""
    names = tuple(columns)
    unknown = [c for c in names if c not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {', '.join(unknown)}")
    if key not in names:
        raise ValueError(f"upsert rows into {table.name} need the key column {key}")
    return names
