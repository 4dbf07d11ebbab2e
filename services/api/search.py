"""Meaning search: a free text embedded as an e5 query, answered with the nearest movie overviews."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from services.api import deps
from services.api.explorer_schemas import SearchHit, SearchResults
from services.api.schemas import ErrorBody
from services.serving.runtime import Busy

router = APIRouter(tags=["movies"])
MAX_QUERY_CHARS = 500


@router.get(
    "/search",
    response_model=SearchResults,
    responses={
        503: {
            "model": ErrorBody,
            "description": "the vector store or the embedding model is unavailable, or every search slot is busy "
            "(Retry-After)",
        }
    },
)
def search(
    request: Request,
    rt: deps.RuntimeDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            examples=["우주를 배경으로 한 가족 영화"],
            description="what the movie is about, in Korean or English",
        ),
    ],
    k: Annotated[int, Query(ge=1, description="how many movies, at most NEXTWATCH_MAX_K (default 100)")] = 10,
) -> SearchResults:
    """Movies whose overview is nearest in meaning to `q` (multilingual-e5 query embedding, Qdrant search)."""
    text = q.strip()
    if not text:
        raise deps.invalid(("query", "q"), "q must contain some text", q)
    deps.check_at_most(("query", "k"), k, rt.settings.api.max_k, "k")
    if rt.vectors is None:
        raise HTTPException(status_code=503, detail="vectors unavailable: the vector store is not loaded")
    try:
        vector = rt.embed_query(text)
    except Busy as exc:
        raise HTTPException(status_code=503, detail=f"busy: {exc}; try again", headers={"Retry-After": "1"}) from exc
    except Exception as exc:  # a missing model or an unreachable embedding server
        raise HTTPException(status_code=503, detail=f"embedding model unavailable: {type(exc).__name__}") from exc
    hits = rt.guards["vectors"].call(rt.vectors.search_batch, vector, k)[0]
    titles = deps.titles(request, [m for m, _ in hits])
    return SearchResults(query=text, items=[SearchHit(movie_id=m, title=titles.get(m, ""), score=s) for m, s in hits])
