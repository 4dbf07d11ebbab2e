"""Oracle, verified by compilation (no Oracle server runs here): sql/oracle matches the SQLAlchemy
metadata, and the catalog's MERGE upsert has the expected text and bind parameters."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import oracledb
import pytest
from sqlalchemy import Date, DateTime, Integer, String, Text
from sqlalchemy.dialects import oracle
from sqlalchemy.dialects.oracle.base import RESERVED_WORDS
from sqlalchemy.schema import CreateIndex, CreateTable

from services.stores.catalog import MOVIE_COLUMNS, SERIES_COLUMNS, Catalog, metadata, movie_table, series_table
from services.stores.events import EVENT_COLUMNS, event_table, events_metadata
from services.stores.exposures import exposures_metadata
from services.stores.upsert import insert_new_statement, oracle_merge, upsert_statement

SQL_DIR = Path(__file__).resolve().parents[1] / "sql" / "oracle"
DIALECT = oracle.dialect()
CONSTRAINT_STARTS = ("CONSTRAINT ", "PRIMARY KEY", "FOREIGN KEY", "CHECK", "UNIQUE")


def _normal(statement: str) -> str:
    """Upper case, single spaces, no spaces around parentheses and commas."""
    return re.sub(r"\s*([(),])\s*", r"\1", " ".join(statement.split())).upper()


def _split_top_level(body: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in body:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def _schema(statements: list[str]) -> dict[str, object]:
    """{table: (ordered column definitions, set of constraints)} and the set of index statements."""
    tables: dict[str, tuple[list[str], set[str]]] = {}
    indexes: set[str] = set()
    for statement in map(_normal, statements):
        if statement.startswith("CREATE TABLE "):
            name, body = re.fullmatch(r"CREATE TABLE (\w+)\((.*)\)", statement).groups()
            elements = _split_top_level(body)
            columns = [e for e in elements if not e.startswith(CONSTRAINT_STARTS)]
            tables[name] = (columns, set(elements) - set(columns))
        elif statement.startswith("CREATE INDEX "):
            indexes.add(statement)
        else:
            raise AssertionError(f"unexpected DDL: {statement}")
    return {"tables": tables, "indexes": indexes}


def _sql_file_statements(path: Path) -> list[str]:
    """SQL*Plus commands (one line, no semicolon) and SQL statements (up to a semicolon), in order."""
    text = re.sub(r"--[^\n]*", "", path.read_text(encoding="utf-8"))
    text = re.sub(r"^(WHENEVER [^\n]*)$", r"\1;", text, flags=re.MULTILINE)
    return [s.strip() for s in text.split(";") if s.strip()]


def test_sql_files_match_the_sqlalchemy_metadata() -> None:
    statements = _sql_file_statements(SQL_DIR / "02_schema.sql")
    ddl = [s for s in statements if s.upper().startswith("CREATE ")]
    tables = [*metadata.sorted_tables, *events_metadata.sorted_tables, *exposures_metadata.sorted_tables]
    compiled = [str(CreateTable(t).compile(dialect=DIALECT)) for t in tables]
    compiled += [str(CreateIndex(i).compile(dialect=DIALECT)) for t in tables for i in t.indexes]
    from_files, from_metadata = _schema(ddl), _schema(compiled)
    assert from_files["tables"].keys() == {"SERIES", "MOVIE", "EVENT", "EXPOSURE"}
    assert from_files == from_metadata
    assert len(from_files["indexes"]) == 4  # series_id, title, the events' (user_id, at), the exposures' experiment


def test_schema_belongs_to_the_app_user_and_stops_on_errors() -> None:
    statements = [_normal(s) for s in _sql_file_statements(SQL_DIR / "02_schema.sql")]
    assert statements[:3] == [
        "WHENEVER SQLERROR EXIT SQL.SQLCODE",
        "ALTER SESSION SET CONTAINER = FREEPDB1",
        "ALTER SESSION SET CURRENT_SCHEMA = NEXTWATCH",
    ]
    user_script = (SQL_DIR / "01_app_user.sh").read_text(encoding="utf-8")
    assert re.search(r'CREATE USER nextwatch IDENTIFIED BY "\$\{ORACLE_APP_PASSWORD:\?', user_script)
    assert "GRANT CREATE SESSION, CREATE TABLE TO nextwatch;" in user_script
    assert "WHENEVER SQLERROR EXIT SQL.SQLCODE" in user_script
    init_order = sorted(p.name for p in SQL_DIR.iterdir())
    assert init_order == ["01_app_user.sh", "02_schema.sql", "03_ready.sh"]


def test_merge_text_and_binds() -> None:
    statement = oracle_merge(movie_table, "movie_id", ("movie_id", "movie_title", "regtime"))
    compiled = statement.compile(dialect=DIALECT)
    assert str(compiled) == (
        "MERGE INTO movie t\n"
        "USING (SELECT :movie_id AS movie_id, :movie_title AS movie_title, :regtime AS regtime FROM dual) s\n"
        "ON (t.movie_id = s.movie_id)\n"
        "WHEN MATCHED THEN UPDATE SET t.movie_title = s.movie_title, t.regtime = s.regtime\n"
        "WHEN NOT MATCHED THEN INSERT (movie_id, movie_title, regtime) VALUES (s.movie_id, s.movie_title, s.regtime)"
    )
    assert list(compiled.binds) == ["movie_id", "movie_title", "regtime"]
    row = {"movie_id": 1, "movie_title": "토이 스토리", "regtime": datetime(2026, 1, 1, 12)}
    assert compiled.construct_params(row) == row


@pytest.mark.parametrize(
    ("table", "key", "columns"),
    [
        (movie_table, "movie_id", MOVIE_COLUMNS),
        (series_table, "series_id", SERIES_COLUMNS),
    ],
)
def test_full_row_merge_binds_every_column_with_its_type(table, key, columns) -> None:
    compiled = oracle_merge(table, key, columns).compile(dialect=DIALECT)
    sql = str(compiled)
    assert set(compiled.binds) == set(columns)
    for name, bind in compiled.binds.items():
        assert type(bind.type) is type(table.c[name].type)  # dates, CLOBs: the dialect binds them by type
        assert name.upper() not in RESERVED_WORDS
    assert "'" not in sql  # values only ever travel as bind parameters
    matched = re.search(r"UPDATE SET (.*)\nWHEN NOT MATCHED", sql).group(1)
    assert f"t.{key} =" not in matched  # Oracle cannot update the ON column
    assert matched.count(" = s.") == len(columns) - 1
    if table is movie_table:
        assert isinstance(compiled.binds["overview"].type, Text)
        assert isinstance(compiled.binds["release_date"].type, Date)
        assert isinstance(compiled.binds["regtime"].type, DateTime)
        assert isinstance(compiled.binds["movie_title"].type, String)
        assert isinstance(compiled.binds["rating_count"].type, Integer)


def test_partial_rows_touch_only_their_columns() -> None:
    sql = str(oracle_merge(movie_table, "movie_id", ("movie_id", "rating_count")).compile(dialect=DIALECT))
    assert "UPDATE SET t.rating_count = s.rating_count\n" in sql
    assert sql.endswith("INSERT (movie_id, rating_count) VALUES (s.movie_id, s.rating_count)")
    key_only = str(oracle_merge(movie_table, "movie_id", ("movie_id",)).compile(dialect=DIALECT))
    assert "WHEN MATCHED" not in key_only  # nothing to update: insert when missing


def test_merge_is_built_once_per_table_and_columns() -> None:
    columns = ("movie_id", "movie_title")
    assert oracle_merge(movie_table, "movie_id", columns) is oracle_merge(movie_table, "movie_id", columns)
    assert upsert_statement("oracle", movie_table, "movie_id", list(columns)) is oracle_merge(
        movie_table, "movie_id", columns
    )


def test_events_insert_only_the_new_ones_on_oracle() -> None:
    statement = insert_new_statement("oracle", event_table, "event_id", EVENT_COLUMNS)
    compiled = statement.compile(dialect=DIALECT)
    sql = str(compiled)
    assert "WHEN MATCHED" not in sql  # an event stored before is never written again
    assert sql.endswith(f"INSERT ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join(f's.{c}' for c in EVENT_COLUMNS)})")
    assert set(compiled.binds) == set(EVENT_COLUMNS)
    assert isinstance(compiled.binds["at"].type, DateTime) and isinstance(compiled.binds["user_id"].type, String)
    assert not {c.upper() for c in EVENT_COLUMNS} & RESERVED_WORDS


def test_bad_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="no column"):
        oracle_merge(movie_table, "movie_id", ("movie_id", "title; DROP TABLE movie"))
    with pytest.raises(ValueError, match="key column movie_id"):
        oracle_merge(movie_table, "movie_id", ("movie_title",))
    with pytest.raises(ValueError, match="no upsert for 'mysql'"):
        upsert_statement("mysql", movie_table, "movie_id", ("movie_id",))


def test_catalog_on_oracle_uses_thin_mode_and_merge() -> None:
    catalog = Catalog("oracle+oracledb://nextwatch:secret@localhost:1521/?service_name=FREEPDB1")  # no connection yet
    try:
        assert (catalog.engine.dialect.name, catalog.engine.dialect.driver) == ("oracle", "oracledb")
        assert oracledb.is_thin_mode()  # no Oracle client libraries loaded
        statement = upsert_statement(catalog.engine.dialect.name, movie_table, "movie_id", MOVIE_COLUMNS)
        assert str(statement.compile(dialect=catalog.engine.dialect)).startswith("MERGE INTO movie t\n")
    finally:
        catalog.close()
    with pytest.raises(ValueError, match="unsupported catalog database 'mysql'"):
        Catalog("mysql://u:p@localhost/db")


def test_merge_rows_are_dates_not_strings() -> None:
    """What the loaders send: date / datetime objects, bound as such (no string formatting anywhere)."""
    compiled = oracle_merge(movie_table, "movie_id", ("movie_id", "release_date", "regtime")).compile(dialect=DIALECT)
    params = compiled.construct_params(
        {"movie_id": 1, "release_date": date(1995, 10, 30), "regtime": datetime(2026, 1, 1)}
    )
    assert params["release_date"] == date(1995, 10, 30) and params["regtime"] == datetime(2026, 1, 1)
