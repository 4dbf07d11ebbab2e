"""Titles of recommended movies: read once at startup with the recommender's catalogue facts."""

from __future__ import annotations

from collections.abc import Sequence

from services.serving.runtime import Runtime


class TitleIndex:
    """movie_id -> title of every active movie, as the runtime read them with its catalogue facts (a title
    changed in the catalog shows after a restart, as genres and series do); other ids are asked of the catalog."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._titles = runtime.facts.titles

    def lookup(self, movie_ids: Sequence[int]) -> dict[int, str]:
        """Titles of the ids that exist."""
        found = self._titles.lookup(movie_ids)
        rest = [m for m in movie_ids if m not in found]
        if rest:
            rt = self._runtime
            found.update(rt.guards["catalog"].call(rt.catalog.titles, rest))
        return found
