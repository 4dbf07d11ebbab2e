"""Writing TMDB records into the catalog: movie fields, real series (collections) and the inferred series
they replace, in one transaction (see `pipelines.tmdb.mapping` for how a record maps to catalog fields)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipelines.tmdb.mapping import MappedMovie, clip, map_movie, to_int, to_text
from services.stores.catalog import Catalog, now

# movie columns that keep the catalog value when TMDB has none
_KEEP_IF_MISSING = ("movie_title", "original_title", "release_date", "imdb_id")


@dataclass
class ApplyResult:
    records: int = 0  # usable movie records seen
    movies: int = 0  # catalog movies updated (one tmdb id can be several MovieLens movies)
    unmatched: int = 0  # records whose tmdb id is not in the catalog
    series: int = 0  # real series referenced by the updated movies
    english_overviews: int = 0  # updated movies whose overview fell back to English
    no_overview: int = 0
    inferred_series: int | None = None  # inferred series after the refresh (None: not refreshed)
    invalid: int = 0  # records without a usable id


@dataclass
class _Plan:
    mapped: dict[int, MappedMovie] = field(default_factory=dict)
    series_titles: dict[int, str] = field(default_factory=dict)
    members: dict[int, int] = field(default_factory=dict)  # tmdb movie id -> collection id (collections)


def apply_records(
    catalog: Catalog,
    records: Iterable[Mapping[str, Any]],
    *,
    language: str = "ko",
    collections: Iterable[Mapping[str, Any]] = (),
    movies: pd.DataFrame | None = None,
) -> ApplyResult:
    """Write TMDB movie records (and optionally collection records) into the catalog, in one transaction
    (an apply cut short leaves the catalog as it was); idempotent.

    `records` are TMDB movie payloads whose top-level text is in `language`; `collections` are
    `/3/collection/{id}` payloads (Korean names and member lists).  Movies are matched by `tmdb_id`.
    Real series replace inferred ones: the inferred series are re-inferred from `movies` (MovieLens
    movieId/title/year, as `pipelines.catalog.load`) for the movies left without a real series, when
    the real series changed.
    """
    with catalog.transaction():
        return _apply(catalog, records, language, collections, movies)


def _apply(
    catalog: Catalog,
    records: Iterable[Mapping[str, Any]],
    language: str,
    collections: Iterable[Mapping[str, Any]],
    movies: pd.DataFrame | None,
) -> ApplyResult:
    result = ApplyResult()
    plan = _Plan()
    by_tmdb: dict[int, list[int]] = {}
    for movie_id, tmdb_id in catalog.movies_with_tmdb_id():
        by_tmdb.setdefault(tmdb_id, []).append(movie_id)
    unmatched: set[int] = set()
    for record in records:  # streamed: only the records of catalog movies are kept (a later one wins)
        record_id = to_int(record.get("id"))
        if record_id is not None and record_id > 0 and record_id not in by_tmdb:
            unmatched.add(record_id)
            continue
        try:
            record_movie = map_movie(record, language)
        except ValueError:
            result.invalid += 1
            continue
        plan.mapped[record_movie.tmdb_id] = record_movie
        if record_movie.series_id is not None:
            plan.series_titles.setdefault(record_movie.series_id, record_movie.series_title or "")
    for collection in collections:
        collection_id = to_int(collection.get("id"))
        if collection_id is None or collection_id <= 0:
            result.invalid += 1
            continue
        name = clip("series_title", to_text(collection.get("name")))
        if name:
            plan.series_titles[collection_id] = name
        else:
            plan.series_titles.setdefault(collection_id, f"TMDB collection {collection_id}")
        for part in collection.get("parts") or ():
            part_id = to_int(part.get("id")) if isinstance(part, Mapping) else None
            if part_id is not None and part_id in by_tmdb:
                plan.members.setdefault(part_id, collection_id)
    result.records = len(plan.mapped) + len(unmatched)
    result.unmatched = len(unmatched)
    targets = sorted(m for t in set(plan.mapped) | set(plan.members) for m in by_tmdb.get(t, ()))
    existing = {row["movie_id"]: row for row in catalog.get_movies(targets)}
    real_before = _real_series_members(catalog)

    movie_rows: list[dict[str, Any]] = []
    used_series: set[int] = set()
    for tmdb_id in sorted(set(plan.mapped) | set(plan.members)):
        mapped = plan.mapped.get(tmdb_id)
        for movie_id in by_tmdb.get(tmdb_id, ()):
            current = existing.get(movie_id)
            if current is None:
                continue
            series_id = mapped.series_id if mapped is not None else None
            if series_id is None:
                series_id = plan.members.get(tmdb_id)
            if series_id is None and current["series_id"] is not None and current["series_id"] < 0:
                series_id = current["series_id"]  # keep the inferred series; the refresh below decides
            if series_id is not None and series_id > 0:
                used_series.add(series_id)
            if mapped is None:  # only known as a collection member
                if series_id != current["series_id"]:
                    movie_rows.append({"movie_id": movie_id, "series_id": series_id})
                continue
            row = {"movie_id": movie_id, **mapped.fields, "series_id": series_id}
            for column in _KEEP_IF_MISSING:
                if row[column] is None:
                    row[column] = current.get(column)
            if row["movie_title"] is None:
                row["movie_title"] = f"TMDB {tmdb_id}"
            movie_rows.append(row)
            result.movies += 1
            result.english_overviews += row["overview_language"] == "en"
            result.no_overview += row["overview"] is None

    known_series = set(catalog.series_ids())
    # series for the movies written, and new titles for real series already in the catalog
    wanted = {
        s: plan.series_titles[s]
        for s in sorted(used_series | (set(plan.series_titles) & known_series))
        if s in plan.series_titles
    }
    stamp = now()
    catalog.upsert_series(
        {"series_id": s, "series_title": t, "inferred": "N", "useyn": "Y", "regtime": stamp}
        for s, t in wanted.items()
        if s not in known_series
    )
    catalog.update_series(
        {"series_id": s, "series_title": t, "inferred": "N"} for s, t in wanted.items() if s in known_series
    )
    # updates take one column set per statement: full TMDB rows and series-only rows go separately
    catalog.update_movies([r for r in movie_rows if len(r) > 2])
    catalog.update_movies([r for r in movie_rows if len(r) == 2])
    result.series = len(used_series)

    if _real_series_members(catalog) != real_before:
        result.inferred_series = _refresh_inferred(catalog, movies)
    return result


def _real_series_members(catalog: Catalog) -> frozenset[int]:
    facts = catalog.movie_facts()
    return frozenset(m for m, s in zip(facts.movie_ids, facts.series_ids) if s is not None and s > 0)


def _refresh_inferred(catalog: Catalog, movies: pd.DataFrame | None) -> int:
    """Re-infer series for the movies without a real one (as the catalog step does).

    Without the MovieLens titles (`movies`), inferred series left with fewer than two members are
    dropped instead.
    """
    if movies is not None:
        from pipelines.catalog.load import refresh_inferred_series

        return len(refresh_inferred_series(catalog, movies))
    facts = catalog.movie_facts()
    sizes: dict[int, int] = {}
    for series_id in facts.series_ids:
        if series_id is not None and series_id < 0:
            sizes[series_id] = sizes.get(series_id, 0) + 1
    inferred = catalog.series_ids(inferred=True)
    catalog.delete_series([s for s in inferred if sizes.get(s, 0) < 2])
    return sum(1 for s in inferred if sizes.get(s, 0) >= 2)
