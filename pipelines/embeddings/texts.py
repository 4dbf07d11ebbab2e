"""What a movie is embedded from."""

from __future__ import annotations

from datetime import date
from typing import Any


def content_text(row: dict[str, Any]) -> str:
    """What a movie is embedded from: its overview (Korean, else English), else title, year and genres."""
    overview = (row.get("overview") or "").strip()
    if overview:
        return " ".join(overview.split())
    title = (row.get("movie_title") or row.get("original_title") or "").strip()
    released: date | None = row.get("release_date")
    genres = (row.get("genres") or "").replace("|", ", ")
    year = f" ({released.year})" if released else ""
    return f"{title}{year}. {genres}" if genres else f"{title}{year}"
