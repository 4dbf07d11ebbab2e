"""User-based recommendations for someone who is not in the training data, from the ratings they give."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Request

from services.api import deps
from services.api.schemas import Contribution, ErrorBody, UserRatings, UserRecommendations, UserRecommendedMovie
from services.serving.recommend import recommend_for_ratings
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
    deps.check_size(len(body.ratings), rt.settings.api.max_user_ratings, "ratings")
    deps.check_at_most(("body", "k"), body.k, rt.settings.api.max_k, "k")
    deps.require_known(rt, list(body.ratings))
    return recommend_for_user(request, rt, body.ratings, body.k, explain=body.explain)


def recommend_for_user(
    request: Request, rt: Runtime, ratings: Mapping[int, float], k: int, *, explain: bool
) -> UserRecommendations:
    """User-based recommendations as the API answers them (titles, explanations, degradation)."""
    request.state.strategy = STRATEGY_LABEL
    served = recommend_for_ratings(rt, ratings, k, explain=explain)
    if served.missing:
        request.app.state.metrics.count_degraded(STRATEGY_LABEL, served.missing)
    titles = deps.titles(request, [m for m, _ in served.scored] + list(ratings))
    items = [
        UserRecommendedMovie(
            movie_id=m,
            title=titles.get(m, ""),
            score=s,
            source=served.source,
            because=[
                Contribution(movie_id=r, title=titles.get(r, ""), contribution=c) for r, c in served.because.get(m, [])
            ]
            if explain
            else None,
        )
        for m, s in served.scored
    ]
    liked = set(served.used)
    return UserRecommendations(
        items=items,
        used=served.used,
        ignored=[m for m in ratings if m not in liked],
        degraded=bool(served.missing),
        missing=served.missing,
    )
