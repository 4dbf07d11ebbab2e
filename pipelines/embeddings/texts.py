"""What a movie is embedded from (`settings.content.text` chooses the variant; `nextwatch tune` picks it)."""

from __future__ import annotations

from datetime import date
from typing import Any

# "overview": the overview, else title, year and genres (the default); "title": title, year and genres only;
# "both": title, year and genres, then the overview
TEXT_VARIANTS = ("overview", "title", "both")


def content_text(row: dict[str, Any], variant: str = "overview") -> str:
    """What a movie is embedded from: by default its overview (Korean, else English), else title, year and
    genres; `variant` "title" never reads the overview, "both" puts the overview after title, year and genres."""
    if variant not in TEXT_VARIANTS:
        raise ValueError(f"unknown content text {variant!r}: use one of {', '.join(TEXT_VARIANTS)}")
    overview = " ".join((row.get("overview") or "").split()) if variant != "title" else ""
    if overview and variant == "overview":
        return overview
    heading = title_text(row)
    return f"{heading}. {overview}" if overview else heading


def title_text(row: dict[str, Any]) -> str:
    """Title, year and genres: "Toy Story (1995). Adventure, Animation"."""
    title = (row.get("movie_title") or row.get("original_title") or "").strip()
    released: date | None = row.get("release_date")
    genres = (row.get("genres") or "").replace("|", ", ")
    year = f" ({released.year})" if released else ""
    return f"{title}{year}. {genres}" if genres else f"{title}{year}"
