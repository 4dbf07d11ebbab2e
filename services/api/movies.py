"""Catalogue routes: one movie, search, random browsing and a series."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query

from services.api import deps, views
from services.api.schemas import ErrorBody, Movie, MovieList, Series

router = APIRouter(tags=["movies"])
NOT_FOUND: deps.Responses = {404: {"model": ErrorBody, "description": "unknown id"}}
UNAVAILABLE: deps.Responses = {503: {"model": ErrorBody, "description": "a store did not answer in time or failed"}}

Limit = Annotated[int, Query(ge=1, description="how many movies, at most NEXTWATCH_MAX_LIMIT (default 100)")]
Genre = Annotated[str | None, Query(max_length=100, description="a genre name, case-insensitive", examples=["Comedy"])]
IncludeAdult = Annotated[bool, Query(description="also adult movies")]


@router.get("/movies", response_model=MovieList, responses=UNAVAILABLE)
def search_movies(
    rt: deps.RuntimeDep,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="part of the Korean or original title, case-insensitive",
            examples=["토이 스토리"],
        ),
    ] = None,
    genre: Genre = None,
    limit: Limit = 20,
    include_adult: IncludeAdult = False,
) -> MovieList:
    """Movies whose title or original title contains `q` and/or that have `genre`; most rated first."""
    deps.check_at_most(("query", "limit"), limit, rt.settings.api.max_limit, "limit")
    title = q.strip() if q else None
    name = deps.known_genre(rt, ("query", "genre"), genre)
    if not title and not name:
        raise deps.invalid(("query", "q"), "give a title to search for (q) and/or a genre", q)
    rows = deps.catalog(rt, rt.catalog.search_movies, title, name, limit=limit, include_adult=include_adult)
    return MovieList(items=[views.movie(r, rt.settings.tmdb.image_base) for r in rows])


@router.get("/movies/random", response_model=MovieList, responses=UNAVAILABLE)
def random_movies(
    rt: deps.RuntimeDep,
    genre: Genre = None,
    limit: Limit = 10,
    include_adult: IncludeAdult = False,
) -> MovieList:
    """Random catalogue movies, of one genre if given (the earlier service's /all and /genres)."""
    deps.check_at_most(("query", "limit"), limit, rt.settings.api.max_limit, "limit")
    name = deps.known_genre(rt, ("query", "genre"), genre)
    ids = deps.items(rt).sample(
        [name] if name else None, limit, include_adult=include_adult, rng=np.random.default_rng()
    )
    rows = deps.catalog(rt, rt.catalog.get_movies, ids)
    return MovieList(items=[views.movie(r, rt.settings.tmdb.image_base) for r in rows])


@router.get("/movies/{movie_id}", response_model=Movie, responses={**NOT_FOUND, **UNAVAILABLE})
def get_movie(rt: deps.RuntimeDep, movie_id: Annotated[int, Path(ge=1, le=2**31 - 1, examples=[1])]) -> Movie:
    """One catalogue movie, with its poster and IMDb URLs."""
    row = deps.catalog(rt, rt.catalog.get_movie, movie_id)
    if row is None or row.get("useyn") == "N":  # hidden: no longer in the ingested release
        raise HTTPException(status_code=404, detail=f"movie {movie_id} not found")
    return views.movie(row, rt.settings.tmdb.image_base)


@router.get("/series/{series_id}", response_model=Series, responses={**NOT_FOUND, **UNAVAILABLE})
def get_series(
    rt: deps.RuntimeDep,
    series_id: Annotated[
        int,
        Path(
            ge=-(2**31 - 1), le=2**31 - 1, examples=[10194], description="negative ids are series inferred from titles"
        ),
    ],
) -> Series:
    """A series and its movies, oldest release first."""
    series = deps.catalog(rt, rt.catalog.get_series, series_id)
    if series is None:
        raise HTTPException(status_code=404, detail=f"series {series_id} not found")
    members = deps.catalog(rt, rt.catalog.series_members, series_id)
    title = series["series_title"]
    return Series(
        series_id=series_id,
        series_title=title,
        inferred=series["inferred"] == "Y",
        movies=[
            views.movie({**r, "series_inferred": series["inferred"]}, rt.settings.tmdb.image_base, title)
            for r in views.release_order(members)
        ],
    )
