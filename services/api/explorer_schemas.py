"""Response bodies of the explorer page's routes: meaning search, strategy and genre lists."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SearchHit(BaseModel):
    movie_id: int
    title: str
    score: float = Field(description="cosine similarity of the query and the movie's overview embedding")


class SearchResults(BaseModel):
    query: str = Field(description="the text that was embedded (trimmed)")
    items: list[SearchHit] = Field(description="nearest movies, best first")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "query": "우주를 배경으로 한 가족 영화",
                    "items": [{"movie_id": 2009, "title": "스페이스 캠프", "score": 0.87}],
                }
            ]
        }
    )


class StrategyInfo(BaseModel):
    name: str
    label: str = Field(description="how lists show it (the page translates the names it knows)")
    available: bool = Field(description="false when a part the strategy needs is missing (it would answer 503)")


class StrategyList(BaseModel):
    default: str = "hybrid"
    items: list[StrategyInfo] = Field(description="product default first, then the evaluator's order")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "default": "hybrid",
                    "items": [{"name": "hybrid", "available": True}, {"name": "series", "available": True}],
                }
            ]
        }
    )


class GenreList(BaseModel):
    items: list[str] = Field(description="every genre name as the catalogue spells it, sorted")

    model_config = ConfigDict(json_schema_extra={"examples": [{"items": ["Adventure", "Animation", "Comedy"]}]})
