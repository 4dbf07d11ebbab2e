"""Finding a MovieLens release on disk: CSV, .dat or parquet files, or ml-100k's own u.data/u.item, in a
folder or beside a ratings file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RELEASE_FORMATS = ("csv", "dat", "parquet")  # preference order when a folder holds several
ML_100K = "ml-100k"  # u.data (tab-separated ratings), u.item (pipe-separated movies), u.genre


class IngestError(ValueError):
    """A MovieLens source is missing, of an unknown layout or malformed."""


@dataclass(frozen=True)
class Release:
    """A MovieLens release found on disk."""

    root: Path
    format: str  # "csv", "dat", "parquet" or "ml-100k"
    ratings: Path
    movies: Path | None
    links: Path | None


def _release_in(directory: Path) -> Release | None:
    for fmt in RELEASE_FORMATS:
        ratings = directory / f"ratings.{fmt}"
        if ratings.is_file():
            return release_from_ratings_file(ratings)
    if (directory / "u.data").is_file():
        return release_from_ratings_file(directory / "u.data")
    return None


def release_from_ratings_file(ratings: Path) -> Release:
    """The release a ratings file belongs to (its movies and links files are its siblings)."""
    root = ratings.parent
    if ratings.name == "u.data":
        item = root / "u.item"
        return Release(root=root, format=ML_100K, ratings=ratings, movies=item if item.is_file() else None, links=None)
    fmt = ratings.suffix.lower().lstrip(".")
    if fmt not in RELEASE_FORMATS:
        raise IngestError(
            f"{ratings}: unsupported ratings file type {ratings.suffix!r} (expected .csv, .dat, .parquet, u.data "
            "or .zip)"
        )

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
    raise IngestError(
        f"unknown MovieLens layout in {directory}: no ratings.csv, ratings.dat, ratings.parquet or u.data "
        f"there or in a single subdirectory; found: {shown}"
    )
