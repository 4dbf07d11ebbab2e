"""Lists a client builds its controls from: the strategies and the catalogue's genres."""
from __future__ import annotations

from fastapi import APIRouter

from services.api import deps
from services.api.explorer_schemas import GenreList, StrategyInfo, StrategyList
from services.recommender.standard import STRATEGY_NAMES

router = APIRouter(tags=["movies"])
DEFAULT_STRATEGY = "hybrid"


@router.get("/strategies", response_model=StrategyList)
def strategies(rt: deps.RuntimeDep) -> StrategyList:
    """Every strategy name `strategy=` takes, hybrid first, and whether it can answer now."""
    served = rt.strategies
    names = [DEFAULT_STRATEGY] + [n for n in STRATEGY_NAMES if n != DEFAULT_STRATEGY]
    return StrategyList(default=DEFAULT_STRATEGY, items=[StrategyInfo(name=n, available=n in served) for n in names])


@router.get("/genres", response_model=GenreList)
def genres(rt: deps.RuntimeDep) -> GenreList:
    """Every genre of the catalogue (the values `genre=` takes)."""
    return GenreList(items=deps.items(rt).genres)
