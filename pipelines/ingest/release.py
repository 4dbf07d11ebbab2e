"""Finding a MovieLens release on disk: CSV, .dat or parquet files, in a folder or beside a ratings file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RELEASE_FORMATS = ("csv", "dat", "parquet")  # preference order when a folder holds several


class IngestError(ValueError):
    """A MovieLens source is missing, of an unknown layout or malformed."""


@dataclass(frozen=True)
class Release:
    """A MovieLens release found on disk."""

    root: Path
    format: str  # "csv", "dat" or "parquet"
    ratings: Path
    movies: Path | None
    links: Path | None


def _release_in(directory: Path) -> Release | None:
    for fmt in RELEASE_FORMATS:
        ratings = directory / f"ratings.{fmt}"
        if ratings.is_file():
            return release_from_ratings_file(ratings)
    return None


def release_from_ratings_file(ratings: Path) -> Release:
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
