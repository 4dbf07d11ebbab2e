"""The relational movie/series catalog (SQLAlchemy Core): seed 002's Oracle tables plus a few columns.

SQLite is the embedded default; PostgreSQL and Oracle run the same statements, except the upsert whose
form each database decides (services/stores/upsert.py). These two modules are the only ones that speak
SQL to the catalog; sql/oracle/ holds the same schema as DDL (tests/test_oracle_sql.py keeps them equal).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    CHAR,
    CheckConstraint,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    literal,
    make_url,
    or_,
    select,
    text,
    type_coerce,
)

from services.stores.array_files import IdIndex
from services.stores.errors import ArtifactError
from services.stores.upsert import SUPPORTED_DIALECTS, upsert_statement

metadata = MetaData()

series_table = Table(
    "series",
    metadata,
    Column("series_id", Integer, primary_key=True, autoincrement=False),
    Column("series_title", String(500), nullable=False),
    Column("inferred", CHAR(1), nullable=False, server_default="N"),
    Column("useyn", CHAR(1), nullable=False, server_default="Y"),
    Column("regtime", DateTime, nullable=False),
    PrimaryKeyConstraint("series_id", name="pk_series"),
    CheckConstraint("useyn IN ('Y', 'N')", name="ck_series_useyn"),
    CheckConstraint("inferred IN ('Y', 'N')", name="ck_series_inferred"),
)

movie_table = Table(
    "movie",
    metadata,
    Column("movie_id", Integer, primary_key=True, autoincrement=False),
    Column("movie_title", String(500), nullable=False),
    Column("original_language", String(16)),
    Column("original_title", String(500)),
    Column("poster_path", String(200)),
    Column("overview", Text),
    Column("overview_language", String(16)),
    Column("series_id", Integer, ForeignKey("series.series_id", name="fk_movie_series")),
    Column("release_date", Date),
    Column("runtime", Integer),
    Column("tagline", String(1000)),
    Column("imdb_id", String(20)),
    Column("adult", CHAR(1), nullable=False, server_default="N"),
    Column("useyn", CHAR(1), nullable=False, server_default="Y"),
    Column("regtime", DateTime, nullable=False),
    Column("tmdb_id", Integer),
    Column("genres", String(500)),
    Column("rating_count", Integer, nullable=False, server_default=text("0")),
    Column("rating_avg", Float),
    PrimaryKeyConstraint("movie_id", name="pk_movie"),
    CheckConstraint("adult IN ('Y', 'N')", name="ck_movie_adult"),
    CheckConstraint("useyn IN ('Y', 'N')", name="ck_movie_useyn"),
    Index("ix_movie_series_id", "series_id"),
    Index("ix_movie_title", "movie_title"),
)

MOVIE_COLUMNS: tuple[str, ...] = tuple(c.name for c in movie_table.columns)
SERIES_COLUMNS: tuple[str, ...] = tuple(c.name for c in series_table.columns)
_BATCH = 2000


NO_SERIES = np.iinfo(np.int64).min  # MovieFacts.series of a movie in no series
_FACT_ROWS = 5_000  # rows read at a time: the arrays grow, the rows in flight stay few (and their memory reused)


class Titles:
    """movie_id -> title of many movies in three arrays (no object per movie): ascending ids, and each title's
    UTF-8 bytes in one buffer at its offset."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray, data: bytes) -> None:
        self.ids = ids  # int64 [n], ascending
        self.offsets = offsets  # int64 [n + 1]: title i is data[offsets[i]:offsets[i + 1]]
        self.data = data
        self._index = IdIndex(ids)

    @classmethod
    def of(cls, titles: Mapping[int, str]) -> Titles:
        """From a mapping (any order)."""
        ids = sorted(titles)
        return cls.join(np.asarray(ids, dtype=np.int64), [titles[m].encode("utf-8") for m in ids])

    @classmethod
    def join(cls, ids: np.ndarray, encoded: Sequence[bytes]) -> Titles:
        """From ascending ids and their titles' UTF-8 bytes."""
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
        return cls(ids, offsets, b"".join(encoded))

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, movie_ids: Sequence[int]) -> dict[int, str]:
        """Titles of the ids held (the others are left out)."""
        if not movie_ids:
            return {}
        rows = self._index.positions(movie_ids).tolist()
        data, offsets = self.data, self.offsets
        return {
            int(m): data[offsets[row] : offsets[row + 1]].decode("utf-8") for m, row in zip(movie_ids, rows) if row >= 0
        }


class MovieFacts:
    """The per-movie facts the recommender keeps in memory (loaded once, in one query), as columns of the
    active movies by ascending id: numpy arrays and, for the genres, a code per movie into the distinct genre
    texts; no Python object per movie. The list properties (`movie_ids`, `series_ids`, ...) give a column as
    Python values, made on each call."""

    def __init__(
        self,
        movie_ids: Sequence[int],
        series_ids: Sequence[int | None],
        release_dates: Sequence[date | None],
        rating_counts: Sequence[int],
        adult: Sequence[bool],
        genres: Sequence[str],
        titles: Titles | None = None,
    ) -> None:
        """From Python values (the catalog reads the columns directly: `Catalog.movie_facts`)."""
        texts: dict[str, int] = {}
        self.ids = np.asarray(movie_ids, dtype=np.int64).reshape(-1)
        self.series = np.array([NO_SERIES if s is None else s for s in series_ids], dtype=np.int64)
        self.released = np.array(release_dates, dtype="datetime64[D]").reshape(-1)
        self.counts = np.asarray(rating_counts, dtype=np.int64).reshape(-1)
        self.is_adult = np.asarray(adult, dtype=bool).reshape(-1)
        self.genre_codes = np.array([texts.setdefault(g or "", len(texts)) for g in genres], dtype=np.int32)
        self.genre_texts = tuple(texts)
        self.titles = titles if titles is not None else Titles.of({})

    @classmethod
    def of_columns(
        cls,
        ids: np.ndarray,
        series: np.ndarray,
        released: np.ndarray,
        counts: np.ndarray,
        is_adult: np.ndarray,
        genre_codes: np.ndarray,
        genre_texts: tuple[str, ...],
        titles: Titles,
    ) -> MovieFacts:
        """From the columns themselves (series: `NO_SERIES` where none; released: NaT where unknown)."""
        facts = cls.__new__(cls)
        facts.ids, facts.series, facts.released, facts.counts, facts.is_adult = ids, series, released, counts, is_adult
        facts.genre_codes, facts.genre_texts, facts.titles = genre_codes, genre_texts, titles
        return facts

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def movie_ids(self) -> list[int]:
        return self.ids.tolist()

    @property
    def series_ids(self) -> list[int | None]:
        return [None if s == NO_SERIES else s for s in self.series.tolist()]

    @property
    def release_dates(self) -> list[date | None]:
        return self.released.tolist()

    @property
    def rating_counts(self) -> list[int]:
        return self.counts.tolist()

    @property
    def adult(self) -> list[bool]:
        return self.is_adult.tolist()

    @property
    def genres(self) -> list[str]:
        return [self.genre_texts[c] for c in self.genre_codes.tolist()]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _read_only(path: Path) -> Callable[[], sqlite3.Connection]:
    """Connections to the SQLite file `path` that can neither create nor change it: ArtifactError when it
    is missing; immutable (no -wal/-shm files, no locks) where its directory cannot be written."""

    def connect() -> sqlite3.Connection:
        if not path.is_file():
            raise ArtifactError(f"the catalog {path} is missing: run `nextwatch catalog`")
        immutable = "" if os.access(path.parent, os.W_OK) else "&immutable=1"
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro{immutable}", uri=True, check_same_thread=False)

    return connect


FileState = tuple[str, tuple[int, int] | None, tuple[int, int] | None]  # the file; (mtime ns, size) of it and its WAL


class Catalog:
    """Reads and writes the `movie` and `series` tables through one SQLAlchemy engine."""

    def __init__(self, url: str, *, read_only: bool = False, **engine_kwargs: Any) -> None:
        """`read_only` (readers: the server, checks): a SQLite file is opened read-only, never created."""
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend not in SUPPORTED_DIALECTS:
            raise ValueError(f"unsupported catalog database {backend!r}: use {', '.join(SUPPORTED_DIALECTS)}")
        file = backend == "sqlite" and parsed.database not in (None, "", ":memory:") and "uri" not in parsed.query
        self.path = Path(str(parsed.database)) if file else None  # the SQLite file
        if read_only and self.path is not None:
            engine_kwargs["creator"] = _read_only(self.path)
        self.engine: Engine = create_engine(url, **engine_kwargs)
        if self.engine.dialect.name == "sqlite" and not read_only:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._joined = threading.local()  # this thread's open transaction(), if any

    def file_state(self) -> FileState | None:
        """The SQLite file's and its write-ahead log's (mtime ns, size), a missing or empty log as None (the first
        reader may create one): what changes when anything is written; None for a database server."""
        if self.path is None:
            return None

        def stamp(file: Path) -> tuple[int, int] | None:
            try:
                stat = file.stat()
            except FileNotFoundError:
                return None
            return (stat.st_mtime_ns, stat.st_size) if stat.st_size else None

        return str(self.path.resolve()), stamp(self.path), stamp(self.path.with_name(self.path.name + "-wal"))

    def create_schema(self) -> None:
        """Create the tables and indexes when missing (never drops anything)."""
        with self._begin() as conn:
            metadata.create_all(conn)

    def has_schema(self) -> bool:
        """Whether the catalog tables exist (an empty or new database has none)."""
        with self._connect() as conn:
            return inspect(conn).has_table(movie_table.name) and inspect(conn).has_table(series_table.name)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction that every read and write of this thread inside the block joins: committed when
        the block ends, rolled back when it raises (or the process dies), so a load is all or nothing."""
        joined = getattr(self._joined, "conn", None)
        if joined is not None:  # nested: part of the outer one
            yield joined
            return
        with self.engine.begin() as conn:
            self._joined.conn = conn
            try:
                yield conn
            finally:
                self._joined.conn = None

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """The open transaction(), else a transaction of its own."""
        joined = getattr(self._joined, "conn", None)
        if joined is not None:
            yield joined
            return
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        """The open transaction() (so reads see its writes), else a connection of its own."""
        joined = getattr(self._joined, "conn", None)
        if joined is not None:
            yield joined
            return
        with self.engine.connect() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    # ---- writes ------------------------------------------------------------------------

    def upsert_series(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert or update series rows by series_id; returns how many rows were written."""
        return self._upsert(series_table, "series_id", rows)

    def upsert_movies(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert or update movie rows by movie_id; returns how many rows were written.

        Every row names the same columns, including the NOT NULL ones without a default (any row may be
        inserted); columns the rows don't name are left alone. update_movies() changes only some columns.
        """
        return self._upsert(movie_table, "movie_id", rows)

    def update_movies(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Update some columns of existing movies (every row names the same columns, plus movie_id)."""
        rows = list(rows)
        if not rows:
            return 0
        values = {c: _bind(c) for c in rows[0] if c != "movie_id"}
        stmt = movie_table.update().where(movie_table.c.movie_id == _bind("b_movie_id")).values(values)
        with self._begin() as conn:
            for chunk in _chunks([{**r, "b_movie_id": r["movie_id"]} for r in rows], _BATCH):
                conn.execute(stmt, chunk)
        return len(rows)

    def update_series(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Update some columns of existing series (every row names the same columns, plus series_id)."""
        rows = list(rows)
        if not rows:
            return 0
        values = {c: _bind(c) for c in rows[0] if c != "series_id"}
        stmt = series_table.update().where(series_table.c.series_id == _bind("b_series_id")).values(values)
        with self._begin() as conn:
            for chunk in _chunks([{**r, "b_series_id": r["series_id"]} for r in rows], _BATCH):
                conn.execute(stmt, chunk)
        return len(rows)

    def set_active(self, movie_ids: Iterable[int], active: bool) -> int:
        """Show (useyn 'Y') or hide (useyn 'N': never recommended, searched or listed) movies by id."""
        return self.update_movies({"movie_id": int(m), "useyn": "Y" if active else "N"} for m in movie_ids)

    def set_series(self, assignments: Mapping[int, int | None]) -> None:
        """Point movies at a series (or none) by id."""
        self.update_movies({"movie_id": m, "series_id": s} for m, s in assignments.items())

    def delete_series(self, series_ids: Sequence[int]) -> None:
        """Detach movies from the given series and delete those series rows."""
        if not series_ids:
            return
        with self._begin() as conn:
            for chunk in _chunks(list(series_ids), 500):
                conn.execute(movie_table.update().where(movie_table.c.series_id.in_(chunk)).values(series_id=None))
                conn.execute(series_table.delete().where(series_table.c.series_id.in_(chunk)))

    def _upsert(self, table: Table, key: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Batched upsert in one transaction: one executemany of the dialect's statement per batch."""
        written = 0
        with self._begin() as conn:
            for chunk in _chunks(list(rows), _BATCH):
                conn.execute(upsert_statement(self.engine.dialect.name, table, key, tuple(chunk[0])), chunk)
                written += len(chunk)
        return written

    # ---- reads -------------------------------------------------------------------------

    def movie_ids(self) -> dict[int, bool]:
        """Every catalog movie id, hidden ones too, and whether it is active (useyn 'Y')."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(movie_table.c.movie_id, movie_table.c.useyn))
            return {int(m): flag == "Y" for m, flag in rows}

    def count_movies(self) -> int:
        with self._connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(movie_table)) or 0)

    def get_movie(self, movie_id: int) -> dict[str, Any] | None:
        """One movie row with its series title, or None."""
        rows = self.get_movies([movie_id])
        return rows[0] if rows else None

    def get_movies(self, movie_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Movie rows (with `series_title`) for the ids that exist, in the order asked."""
        if not movie_ids:
            return []
        stmt = select(
            movie_table, series_table.c.series_title, series_table.c.inferred.label("series_inferred")
        ).select_from(movie_table.outerjoin(series_table))
        found: dict[int, dict[str, Any]] = {}
        with self._connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(int(m) for m in movie_ids)), 500):
                for row in conn.execute(stmt.where(movie_table.c.movie_id.in_(chunk))).mappings():
                    found[row["movie_id"]] = dict(row)
        return [found[m] for m in movie_ids if m in found]

    def titles(self, movie_ids: Sequence[int]) -> dict[int, str]:
        """movie_id -> movie_title for the ids that exist."""
        out: dict[int, str] = {}
        with self._connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(int(m) for m in movie_ids)), 500):
                stmt = select(movie_table.c.movie_id, movie_table.c.movie_title).where(
                    movie_table.c.movie_id.in_(chunk)
                )
                out.update({m: t for m, t in conn.execute(stmt)})
        return out

    def series_members(self, series_id: int) -> list[dict[str, Any]]:
        """Movies of one series, newest release first (seed 002's ORDER BY release_date DESC)."""
        stmt = (
            select(movie_table)
            .where(movie_table.c.series_id == series_id, movie_table.c.useyn == "Y")
            .order_by(movie_table.c.release_date.desc(), movie_table.c.movie_id)
        )
        with self._connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def get_series(self, series_id: int) -> dict[str, Any] | None:
        """One series row, or None."""
        with self._connect() as conn:
            row = conn.execute(select(series_table).where(series_table.c.series_id == series_id)).mappings().first()
        return dict(row) if row is not None else None

    def search_movies(
        self, title: str | None = None, genre: str | None = None, *, limit: int = 20, include_adult: bool = True
    ) -> list[dict[str, Any]]:
        """Active movies (with `series_title`) whose title or original title contains `title` and that have
        the genre `genre` (one of the pipe-separated names), both case-insensitive; most rated first."""
        c = movie_table.c
        stmt = (
            select(movie_table, series_table.c.series_title, series_table.c.inferred.label("series_inferred"))
            .select_from(movie_table.outerjoin(series_table))
            .where(c.useyn == "Y")
        )
        if title:
            stmt = stmt.where(
                or_(c.movie_title.icontains(title, autoescape=True), c.original_title.icontains(title, autoescape=True))
            )
        if genre:
            names = func.lower(literal("|") + c.genres + literal("|"))
            stmt = stmt.where(names.contains(f"|{genre.lower()}|", autoescape=True))
        if not include_adult:
            stmt = stmt.where(c.adult == "N")
        stmt = stmt.order_by(c.rating_count.desc(), c.movie_id).limit(limit)
        with self._connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def ping(self) -> bool:
        """False when the SQLite file is gone (open connections would still answer); else True once the
        database answers a trivial query (it raises when it does not)."""
        if self.path is not None and not self.path.is_file():
            return False
        with self._connect() as conn:
            conn.execute(select(1)).scalar()
        return True

    def movies_with_tmdb_id(self) -> list[tuple[int, int]]:
        """(movie_id, tmdb_id) of every movie that has a TMDB id, by movie_id."""
        c = movie_table.c
        stmt = select(c.movie_id, c.tmdb_id).where(c.tmdb_id.is_not(None)).order_by(c.movie_id)
        with self._connect() as conn:
            return [(int(m), int(t)) for m, t in conn.execute(stmt)]

    def series_ids(self, inferred: bool | None = None) -> list[int]:
        stmt = select(series_table.c.series_id)
        if inferred is not None:
            stmt = stmt.where(series_table.c.inferred == ("Y" if inferred else "N"))
        with self._connect() as conn:
            return list(conn.scalars(stmt))

    def content_rows(self) -> Iterator[dict[str, Any]]:
        """Every active movie's id and the fields its content text is built from."""
        c = movie_table.c
        stmt = (
            select(c.movie_id, c.movie_title, c.original_title, c.overview, c.release_date, c.genres, c.series_id)
            .where(c.useyn == "Y")
            .order_by(c.movie_id)
        )
        with self._connect() as conn:
            for row in conn.execute(stmt).mappings():
                yield dict(row)

    def movie_facts(self) -> MovieFacts:
        """Ids, series, release dates, rating counts, adult flags, genres and titles of all active movies, read
        a few thousand rows at a time into columns."""
        c = movie_table.c
        stmt = (
            # the date as the database returns it (a text or a date): numpy parses either, faster than per row
            select(c.movie_id, c.series_id, type_coerce(c.release_date, String), c.rating_count, c.adult)
            .add_columns(c.genres, c.movie_title)
            .where(c.useyn == "Y")
            .order_by(c.movie_id)
        )
        columns: list[list[np.ndarray]] = [[] for _ in range(7)]  # the five facts, genre codes, title lengths
        texts: dict[str, int] = {}
        titles: list[bytes] = []
        with self._connect() as conn:
            # on the statement, not the connection: a connection's options outlive this read (a server-side
            # cursor on PostgreSQL cannot run the writes that may follow on it)
            for part in conn.execute(stmt.execution_options(yield_per=_FACT_ROWS)).partitions():
                row_ids, row_series, row_released, row_counts, row_adult, row_genres, row_titles = zip(*part)
                encoded = [t.encode("utf-8") for t in row_titles]
                for column, values in zip(
                    columns,
                    (
                        np.array(row_ids, dtype=np.int64),
                        np.array([NO_SERIES if s is None else s for s in row_series], dtype=np.int64),
                        np.array(row_released, dtype="datetime64[D]"),
                        np.array([n or 0 for n in row_counts], dtype=np.int64),
                        np.array(row_adult) == "Y",
                        np.array([texts.setdefault(g or "", len(texts)) for g in row_genres], dtype=np.int32),
                        np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)),
                    ),
                ):
                    column.append(values)
                titles.append(b"".join(encoded))
        dtypes = (np.int64, np.int64, "datetime64[D]", np.int64, bool, np.int32, np.int64)
        ids, series, released, counts, adult, codes, lengths = (
            np.concatenate(parts) if parts else np.zeros(0, dtype=dtype) for parts, dtype in zip(columns, dtypes)
        )
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        genre_texts = tuple(t.encode("utf-8").decode("utf-8") for t in texts)  # new strings: every row's is freed
        titled = Titles(ids, offsets, b"".join(titles))
        return MovieFacts.of_columns(ids, series, released, counts, adult, codes, genre_texts, titled)


def now() -> datetime:
    """Registration timestamp for new rows (UTC, no tz: Oracle DATE/TIMESTAMP friendly)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def _bind(name: str) -> Any:
    return bindparam(name)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
