"""Rating readers (CSV, .dat, ml-100k's u.data, parquet) streamed into one ratings.parquet with the canonical
schema; ids must be positive and ratings MovieLens stars."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.ingest.release import ML_100K, IngestError

log = logging.getLogger(__name__)


RATINGS_SCHEMA = pa.schema(
    [
        ("userId", pa.int32()),
        ("movieId", pa.int32()),
        ("rating", pa.float32()),
        ("timestamp", pa.int64()),
    ]
)


RATING_COLUMNS = tuple(RATINGS_SCHEMA.names)


_CSV_BLOCK_SIZE = 1 << 20  # measured best on 2 cores (bigger blocks: more RSS, no faster)


ROW_GROUP_ROWS = 1 << 20


PARQUET_COMPRESSION = "snappy"  # zstd: ~25% smaller but ~1 s slower on 32M rows


RATING_RANGE = (0.5, 5.0)  # MovieLens' stars: half stars 0.5..5 (ml-latest), whole stars 1..5 (ml-100k, ml-1m)


FIRST_DATA_LINE = {"csv": 2, "dat": 1, ML_100K: 1}  # the file line of the first rating (after a header)


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


class RatingsSink:
    """Writes ratings batches to a parquet file in ~1M-row row groups on a background thread."""

    def __init__(self, path: Path, source_path: Path | str, *, first_line: int | None = None) -> None:
        self.source_path = source_path
        self.first_line = first_line  # a text file's line of the first rating; None: rows are counted instead
        self.rows = 0
        self.users = _DistinctIds()
        self.movies = _DistinctIds()
        self._writer = pq.ParquetWriter(path, RATINGS_SCHEMA, compression=PARQUET_COMPRESSION)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ratings-writer")
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._future: Future | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        for name in RATING_COLUMNS:
            nulls = batch.column(name).null_count
            if nulls:
                raise IngestError(f"{self.source_path}: {nulls} missing value(s) in column {name!r}")
        self._check_values(batch)
        self.users.add(batch.column("userId").to_numpy())
        self.movies.add(batch.column("movieId").to_numpy())
        self.rows += batch.num_rows
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _check_values(self, batch: pa.RecordBatch) -> None:
        """IngestError naming the file and the first row whose id is not positive or whose rating is no
        MovieLens star."""
        low, high = RATING_RANGE
        rating = batch.column("rating").to_numpy()
        checks = (
            ("userId", batch.column("userId").to_numpy() < 1, "ids are positive"),
            ("movieId", batch.column("movieId").to_numpy() < 1, "ids are positive"),
            ("rating", ~((rating >= low) & (rating <= high)), f"MovieLens ratings lie in {low:g}..{high:g}"),
        )
        found = [(int(np.argmax(bad)), name, rule) for name, bad, rule in checks if bad.any()]
        if not found:
            return
        index, name, rule = min(found)
        row = self.rows + index + 1
        where = f"row {row}" if self.first_line is None else f"line {row + self.first_line - 1}"
        value = batch.column(name)[index].as_py()
        raise IngestError(f"{self.source_path}, {where}: {name} {value:g} is out of range ({rule})")

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
        except Exception:
            log.debug("closing the ratings writer after a failure", exc_info=True)


def conform_batch(batch: pa.RecordBatch | pa.Table, names: dict[str, str], where: Path | str) -> pa.RecordBatch:
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
            raise IngestError(
                f"{where}: column {names[field.name]!r} ({col.type}) is not a valid {field.name}: {e}"
            ) from e
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=RATINGS_SCHEMA)


def canonical_names(found: list[str], wanted: tuple[str, ...], where: Path | str, what: str) -> dict[str, str]:
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


def progress_bar(path: Path, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024, desc=path.name, disable=not progress
    )


def first_line(path: Path, encoding: str = "utf-8-sig") -> str:
    with open(path, "rb") as f:
        raw = f.readline(1 << 16)
    return raw.decode(encoding, errors="replace").strip("\r\n")


def _stream_csv(
    path: Path,
    sink: RatingsSink,
    progress: bool,
    *,
    read: pacsv.ReadOptions,
    parse: pacsv.ParseOptions,
    convert: pacsv.ConvertOptions,
    names: dict[str, str],
    file_columns: list[str],
) -> None:
    f = pa.OSFile(str(path))
    try:
        with progress_bar(path, progress) as bar:
            try:
                reader = pacsv.open_csv(f, read_options=read, parse_options=parse, convert_options=convert)
                for batch in reader:
                    sink.add(conform_batch(batch, names, path))
                    bar.update(max(0, min(f.tell(), bar.total) - bar.n))
            except pa.ArrowInvalid as e:
                raise IngestError(
                    f"{path}: malformed ratings data: {_explain_arrow(str(e), names, file_columns)}"
                ) from e
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


def _read_ratings_csv(path: Path, sink: RatingsSink, progress: bool) -> None:
    header = first_line(path)
    if not header:
        raise IngestError(f"{path}: empty ratings file (expected a header userId,movieId,rating,timestamp)")
    found = [c[1:-1] if len(c) >= 2 and c[0] == c[-1] == '"' else c for c in header.split(",")]
    names = canonical_names(found, RATING_COLUMNS, path, "ratings CSV header")
    types = {names[f.name]: f.type for f in RATINGS_SCHEMA}
    _stream_csv(
        path,
        sink,
        progress,
        read=pacsv.ReadOptions(block_size=_CSV_BLOCK_SIZE, use_threads=True),
        parse=pacsv.ParseOptions(delimiter=","),
        convert=pacsv.ConvertOptions(column_types=types, include_columns=[names[c] for c in RATING_COLUMNS]),
        names=names,
        file_columns=found,
    )


def _read_headerless(path: Path, sink: RatingsSink, progress: bool, *, separator: str, layout: str) -> None:
    """A ratings file without a header: userId, movieId, rating, timestamp separated by `separator`."""
    first = first_line(path, "latin-1")
    if not first:
        raise IngestError(f"{path}: empty ratings file")
    if len(first.split(separator)) != 4:
        raise IngestError(f"{path}: expected lines {layout}, got {first[:80]!r}")
    # "a::b::c::d" split on ":" gives 7 fields, the odd ones empty: fast single-char parsing in pyarrow
    step = len(separator)
    cols = {name: f"f{i * step}" for i, name in enumerate(RATING_COLUMNS)}
    _stream_csv(
        path,
        sink,
        progress,
        read=pacsv.ReadOptions(block_size=_CSV_BLOCK_SIZE, use_threads=True, autogenerate_column_names=True),
        parse=pacsv.ParseOptions(delimiter=separator[0], quote_char=False),
        convert=pacsv.ConvertOptions(
            column_types={cols[f.name]: f.type for f in RATINGS_SCHEMA}, include_columns=list(cols.values())
        ),
        names=cols,
        file_columns=[f"f{i}" for i in range(3 * step + 1)],
    )


def _read_ratings_parquet(path: Path, sink: RatingsSink, progress: bool) -> None:
    from tqdm.auto import tqdm

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise IngestError(f"{path}: not a readable parquet file: {e}") from e
    names = canonical_names(pf.schema_arrow.names, RATING_COLUMNS, path, "ratings parquet")
    try:
        with tqdm(
            total=pf.metadata.num_rows, unit="rows", unit_scale=True, desc=path.name, disable=not progress
        ) as bar:
            for batch in pf.iter_batches(batch_size=ROW_GROUP_ROWS, columns=list(names.values())):
                sink.add(conform_batch(batch, names, path))
                bar.update(batch.num_rows)
    except (pa.ArrowInvalid, OSError) as e:
        raise IngestError(f"{path}: cannot read ratings: {e}") from e


RATINGS_READERS: dict[str, Callable[[Path, RatingsSink, bool], None]] = {
    "csv": _read_ratings_csv,
    "dat": partial(_read_headerless, separator="::", layout="'userId::movieId::rating::timestamp' (ml-1m/ml-10m .dat)"),
    ML_100K: partial(
        _read_headerless, separator="\t", layout="'user id<TAB>item id<TAB>rating<TAB>timestamp' (ml-100k u.data)"
    ),
    "parquet": _read_ratings_parquet,
}
