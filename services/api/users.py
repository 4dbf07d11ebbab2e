"""User-based recommendations for someone who is not in the training data, from the ratings they give."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Request

from services.api import deps
from services.api.schemas import Contribution, ErrorBody, UserRatings, UserRecommendations, UserRecommendedMovie
from services.recommender.filters import Filter
from services.serving.guards import StoreUnavailable
from services.serving.runtime import Runtime

router = APIRouter(tags=["recommendations"])
STRATEGY_LABEL = "user-based"


@router.post(
    "/users/recommendations",
    response_model=UserRecommendations,
    responses={
        **deps.UNREADABLE_BODY,
        404: {"model": ErrorBody, "description": "a rated movie is not in the catalogue"},
        413: {"model": ErrorBody, "description": "more ratings than NEXTWATCH_MAX_USER_RATINGS"},
    },
)
def user_recommendations(request: Request, rt: deps.RuntimeDep, body: UserRatings) -> UserRecommendations:
    """ALS recommendations for the given ratings: the user is recalculated from them (not in the training
    data) and nothing they rated is recommended. With `explain`, each item lists how much each rated movie
    contributed. Without usable ratings, or when the model is unavailable (`degraded`), popular movies."""
    deps.check_size(len(body.ratings), rt.settings.max_user_ratings, "ratings")
    deps.check_at_most(("body", "k"), body.k, rt.settings.max_k, "k")
    deps.require_known(rt, list(body.ratings))
    return recommend_for_user(request, rt, body.ratings, body.k, explain=body.explain)


def recommend_for_user(
    request: Request, rt: Runtime, ratings: Mapping[int, float], k: int, *, explain: bool
) -> UserRecommendations:
    """User-based recommendations (popular ones when the model has nothing to go on or is unavailable)."""
    request.state.strategy = STRATEGY_LABEL
    model = rt.collaborative
    used = [m for m in ratings if model is not None and m in model and ratings[m] >= model.params.min_rating]
    scored: list[tuple[int, float]] = []
    because: dict[int, list[tuple[int, float]]] = {}
    missing: list[str] = [] if model is not None else ["collaborative"]
    if model is not None and used:
        guard = rt.guards["collaborative"]
        try:
            scored = guard.call(model.recommend_for_ratings, ratings, k)
            if explain:
                because = guard.call(model.explain_for_ratings, ratings, [m for m, _ in scored])
        except StoreUnavailable:
            scored, because, missing = [], {}, ["collaborative"]
    source = "collaborative"
    if not scored:
        source = "popular"
        recs = rt.strategies["popular"].similar(next(iter(ratings)), k, filter=Filter.of(ratings, include_adult=False))
        scored = [(r.movie_id, r.score) for r in recs]
    if missing:
        request.app.state.metrics.count_degraded(STRATEGY_LABEL, missing)
    titles = deps.titles(request, [m for m, _ in scored] + list(ratings))
    items = [
        UserRecommendedMovie(
            movie_id=m,
            title=titles.get(m, ""),
            score=s,
            source=source,
            because=[Contribution(movie_id=r, title=titles.get(r, ""), contribution=c) for r, c in because.get(m, [])]
            if explain
            else None,
        )
        for m, s in scored
    ]
    liked = set(used)
    return UserRecommendations(
        items=items, used=used, ignored=[m for m in ratings if m not in liked], degraded=bool(missing), missing=missing
    )
