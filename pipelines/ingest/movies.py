"""Movie readers (CSV, .dat, ml-100k's u.item, parquet, links) and the canonical movies.parquet."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.ingest.ratings import PARQUET_COMPRESSION, canonical_names
from pipelines.ingest.release import IngestError
from services.stores.atomic import atomic_path

log = logging.getLogger(__name__)


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


# "Toy Story (1995)", "Babylon 5 (1994-1998)", "Hostages (2013- )", "Title (2009) "
_TITLE_YEAR_RE = re.compile(r"^(?P<title>.*?)\s*\(\s*(?P<year>\d{4})\s*(?:[-\u2013]\s*(?:\d{4})?\s*)?\)\s*$")


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
        digits = parse_ids(values, where, "imdbId", nullable=True).astype("string")
    else:
        s = values.astype("string").str.strip()
        s = s.str.replace(r"^[tT][tT]", "", regex=True).replace("", pd.NA)
        bad = s.notna() & ~s.str.fullmatch(r"\d+").fillna(False)
        if bad.any():
            raise IngestError(f"{where}: not an IMDb id: {values[bad].iloc[0]!r}")
        digits = s.str.lstrip("0")
    return ("tt" + digits.str.zfill(7)).astype("string")


def parse_ids(values: pd.Series, where: Path | str, column: str, *, nullable: bool) -> pd.Series:
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


def read_text_csv(path: Path, **kwargs) -> pd.DataFrame:
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
    df = read_text_csv(path)
    names = canonical_names(list(df.columns), ("movieId", "title"), path, "movies CSV")
    genres = canonical_names(list(df.columns), ("genres",), path, "movies CSV") if _has(df, "genres") else None
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


def read_text(path: Path) -> str:
    """A small text file: UTF-8, else latin-1 (ml-1m's and ml-100k's files are latin-1)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _read_movies_dat(path: Path) -> pd.DataFrame:
    ids, titles, genres = [], [], []
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("::")
        if len(parts) < 3:
            raise IngestError(f"{path}:{lineno}: expected 'movieId::Title (Year)::Genres', got {line[:80]!r}")
        ids.append(parts[0])
        titles.append("::".join(parts[1:-1]))
        genres.append(parts[-1])
    return pd.DataFrame({"movieId": ids, "ml_title": titles, "genres": genres}, dtype=object)


def _read_movies_item(path: Path) -> pd.DataFrame:
    """ml-100k's u.item: movie id | title | release date | video release date | IMDb URL | a 0/1 flag per genre
    of u.genre. Genres become the "|"-joined names ("unknown" alone: none); the year is the title's, else
    the release date's."""
    genres = _read_u_genre(path.parent / "u.genre")
    rows = []
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 5 + len(genres):
            raise IngestError(
                f"{path}:{lineno}: expected 'movie id|title|release date|video release date|IMDb URL' and "
                f"{len(genres)} genre flags, got {line[:80]!r}"
            )
        title, year = split_title(parts[1])
        released = parts[2].strip()[-4:]
        named = [name for name, flag in zip(genres, parts[5:]) if flag.strip() == "1" and name != "unknown"]
        rows.append(
            {
                "movieId": parts[0],
                "title": title,
                "year": year if year is not None else (int(released) if released.isdigit() else None),
                "ml_title": parts[1],
                "genres": "|".join(named) or NO_GENRES,
            }
        )
    return pd.DataFrame(rows, columns=["movieId", "title", "year", "ml_title", "genres"], dtype=object)


def _read_u_genre(path: Path) -> list[str]:
    """ml-100k's genre names (u.genre: name|index), in the order of u.item's flags."""
    if not path.is_file():
        raise IngestError(f"{path} is missing: ml-100k's u.item needs its genre names (u.genre) beside it")
    named: dict[int, str] = {}
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        name, _, index = line.strip().rpartition("|")
        if not name or not index.isdigit():
            raise IngestError(f"{path}:{lineno}: expected 'genre|index', got {line[:80]!r}")
        named[int(index)] = name
    if sorted(named) != list(range(len(named))):
        raise IngestError(f"{path}: genre indexes must run 0..{len(named) - 1}, got {sorted(named)}")
    return [named[i] for i in range(len(named))]


def _read_movies_parquet(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise IngestError(f"{path}: not a readable parquet file: {e}") from e
    names = canonical_names(list(df.columns), ("movieId", "title"), path, "movies parquet")
    out = pd.DataFrame({"movieId": df[names["movieId"]]})
    if _has(df, "ml_title") and _has(df, "year"):  # our own output format: title/year/ml_title as they are
        extra = canonical_names(list(df.columns), ("ml_title", "year"), path, "movies parquet")
        out["title"] = df[names["title"]]
        out["year"] = df[extra["year"]]
        out["ml_title"] = df[extra["ml_title"]]
    else:
        out["ml_title"] = df[names["title"]]
    for col in ("genres", "tmdbId", "imdbId"):
        if _has(df, col):
            out[col] = df[canonical_names(list(df.columns), (col,), path, "movies parquet")[col]]
    return out


def read_links(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".parquet":
        try:
            df = pd.read_parquet(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise IngestError(f"{path}: not a readable parquet file: {e}") from e
    else:
        df = read_text_csv(path)
    names = canonical_names(list(df.columns), ("movieId", "imdbId", "tmdbId"), path, "links file")
    return pd.DataFrame({c: df[names[c]] for c in ("movieId", "imdbId", "tmdbId")})


# by the movies file's extension (ml-100k's u.item: "item")
MOVIES_READERS = {
    "csv": _read_movies_csv,
    "dat": _read_movies_dat,
    "item": _read_movies_item,
    "parquet": _read_movies_parquet,
}


def build_movies(
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
    movies["movieId"] = parse_ids(movies["movieId"], movies_where, "movieId", nullable=False)
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
        links["movieId"] = parse_ids(links["movieId"], links_where or "links", "movieId", nullable=False)
        links = links.drop_duplicates("movieId")
        out = out.drop(columns=["tmdbId", "imdbId"]).merge(links, on="movieId", how="left")

    out["tmdbId"] = parse_ids(out["tmdbId"].astype(object), links_where or movies_where, "tmdbId", nullable=True)
    out["imdbId"] = _format_imdb_ids(out["imdbId"], links_where or movies_where)

    year = out["year"].astype("Int64")
    if ((year < -32768) | (year > 32767)).fillna(False).any():
        raise IngestError(f"{movies_where}: year out of range")
    if ((out["movieId"] < np.iinfo(np.int32).min) | (out["movieId"] > np.iinfo(np.int32).max)).any():
        raise IngestError(f"{movies_where}: movieId out of the int32 range")
    out = out.sort_values("movieId", kind="stable").reset_index(drop=True)
    return out.astype(MOVIES_DTYPES)[list(MOVIES_DTYPES)]


def write_movies(movies: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(movies, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=PARQUET_COMPRESSION)
