"""Lists a client builds its controls from: the strategies and the catalogue's genres."""

from __future__ import annotations

from fastapi import APIRouter

from services.api import deps
from services.api.explorer_schemas import GenreList, StrategyInfo, StrategyList
from services.recommender.standard import STRATEGY_NAMES

router = APIRouter(tags=["movies"])
DEFAULT_STRATEGY = "hybrid"
# how a page lists them: the product first, then its parts from the strongest, the baselines last
DISPLAY_ORDER = (
    "hybrid",
    "sequential",
    "collaborative",
    "series",
    "vector",
    "series+vector",
    "recent-popular",
    "popular",
    "random",
)


@router.get("/strategies", response_model=StrategyList)
def strategies(rt: deps.RuntimeDep) -> StrategyList:
    """Every strategy name `strategy=` takes, hybrid first (then its parts, the baselines last), and whether
    it can answer now."""
    served = rt.strategies
    names = [n for n in DISPLAY_ORDER if n in STRATEGY_NAMES] + [n for n in STRATEGY_NAMES if n not in DISPLAY_ORDER]
    return StrategyList(default=DEFAULT_STRATEGY, items=[StrategyInfo(name=n, available=n in served) for n in names])


@router.get("/genres", response_model=GenreList)
def genres(rt: deps.RuntimeDep) -> GenreList:
    """Every genre of the catalogue (the values `genre=` takes)."""
    return GenreList(items=deps.items(rt).genres)
