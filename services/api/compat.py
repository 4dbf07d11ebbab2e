"""The earlier service's routes (seed 000's React front end): `{"result": [movie records]}`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Path, Query, Request

from services.api import deps, views
from services.api.schemas import ErrorBody, LegacyResult
from services.api.users import recommend_for_user
from services.recommender.filters import Filter
from services.serving.guards import StoreUnavailable
from services.serving.runtime import Runtime

router = APIRouter(tags=["compatibility"])
# "movieId:stars" in ASCII digits only (int() and float() would also take "１", "1_0", " 1" and "nan")
_PAIR = re.compile(r"([0-9]{1,10}):([0-9](?:\.[0-9]{1,6})?)")
PAGE = 10  # the earlier service always answered ten movies
NOT_FOUND: deps.Responses = {404: {"model": ErrorBody, "description": "unknown movie"}}


@router.get("/all/", response_model=LegacyResult)
def all_movies(rt: deps.RuntimeDep) -> LegacyResult:
    """Ten random movies."""
    return _records(rt, deps.items(rt).sample(None, PAGE, include_adult=False, rng=np.random.default_rng()))


@router.get("/genres/{genre}", response_model=LegacyResult)
def genre_movies(rt: deps.RuntimeDep, genre: Annotated[str, Path(max_length=100, examples=["comedy"])]) -> LegacyResult:
    """Ten random movies of the genres whose name contains `genre` (case-insensitive; none: empty)."""
    names = deps.items(rt).genres_containing(genre)
    ids = deps.items(rt).sample(names, PAGE, include_adult=False, rng=np.random.default_rng()) if names else []
    return _records(rt, ids)


@router.get("/item-based/{item_id}", response_model=LegacyResult, responses=NOT_FOUND)
def item_based(
    request: Request, rt: deps.RuntimeDep, item_id: Annotated[int, Path(ge=1, le=2**31 - 1, examples=[1])]
) -> LegacyResult:
    """The ten nearest movies by ALS item factors (hybrid recommendations when the model is unavailable)."""
    deps.require_known(rt, [item_id])
    rules = Filter.of(include_adult=False)
    collaborative = rt.strategies.get("collaborative")
    ids: list[int] | None = None
    if collaborative is not None:
        request.state.strategy = "collaborative"
        try:
            recs = collaborative.similar(item_id, PAGE, filter=rules)
            ids = [r.movie_id for r in recs if r.source == "collaborative"]
        except StoreUnavailable:
            ids = None
    if ids is None:
        request.state.strategy = "hybrid"
        result = rt.strategies["hybrid"].recommend_batch([item_id], PAGE, filter=rules)
        ids = [r.movie_id for r in result.items[0]]
    return _records(rt, ids)


@router.get(
    "/user-based/",
    response_model=LegacyResult,
    responses={**NOT_FOUND, 413: {"model": ErrorBody, "description": "more ratings than allowed"}},
)
def user_based(
    request: Request,
    rt: deps.RuntimeDep,
    params: Annotated[
        list[str], Query(description="movieId:rating pairs, e.g. params=1:4.5&params=2:5", examples=[["1:4.5", "2:5"]])
    ] = [],  # noqa: B006 - FastAPI copies it
) -> LegacyResult:
    """Ten user-based (ALS) recommendations for the given ratings, none of the rated movies."""
    deps.check_size(len(params), rt.settings.api.max_user_ratings, "ratings")
    ratings = _parse_ratings(params)
    deps.require_known(rt, list(ratings))
    result = recommend_for_user(request, rt, ratings, PAGE, explain=False)
    return _records(rt, [item.movie_id for item in result.items])


def _parse_ratings(params: Sequence[str]) -> dict[int, float]:
    """{movieId: rating} from "id:rating" strings (ASCII digits: "1:4.5"); 422 naming the first bad one."""
    if not params:
        raise deps.invalid(("query", "params"), "give at least one rating as params=movieId:rating", params)
    ratings: dict[int, float] = {}
    for value in params:
        pair = _PAIR.fullmatch(value)
        movie_id, rating = (int(pair[1]), float(pair[2])) if pair else (0, 0.0)
        if not (1 <= movie_id <= 2**31 - 1 and 0.5 <= rating <= 5.0):
            raise deps.invalid(
                ("query", "params"), 'each rating is movieId:stars with stars from 0.5 to 5, e.g. "1:4.5"', value
            )
        ratings[movie_id] = rating
    return ratings


def _records(rt: Runtime, ids: Sequence[int]) -> LegacyResult:
    rows = deps.catalog(rt, rt.catalog.get_movies, list(ids))
    return LegacyResult(result=[views.legacy_movie(r, rt.settings.tmdb.image_base) for r in rows])
