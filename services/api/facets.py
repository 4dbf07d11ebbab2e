"""Lists a client builds its controls from: the strategies and the catalogue's genres."""

from __future__ import annotations

from fastapi import APIRouter

from services.api import deps
from services.api.explorer_schemas import GenreList, StrategyInfo, StrategyList
from services.recommender.registry import display_order, labels

router = APIRouter(tags=["movies"])
DEFAULT_STRATEGY = "hybrid"


@router.get("/strategies", response_model=StrategyList)
def strategies(rt: deps.RuntimeDep) -> StrategyList:
    """Every strategy name `strategy=` takes, hybrid first (then its parts, the baselines last), and whether
    it can answer now."""
    served, named = rt.strategies, labels()
    return StrategyList(
        default=DEFAULT_STRATEGY,
        items=[StrategyInfo(name=n, label=named[n], available=n in served) for n in display_order()],
    )


@router.get("/genres", response_model=GenreList)
def genres(rt: deps.RuntimeDep) -> GenreList:
    """Every genre of the catalogue (the values `genre=` takes)."""
    return GenreList(items=deps.items(rt).genres)
