"""The neighbour-list cache answers exactly as its source does, and asks the source only when it must."""

from __future__ import annotations

from collections.abc import Sequence

from services.serving.cache import CachedSource


class Counting:
    """A deterministic source: movie m's candidates are m+1, m+2, ... (at most `depth` of them)."""

    name = "vector"

    def __init__(self, depth: int = 50) -> None:
        self.depth = depth
        self.asked: list[tuple[list[int], int]] = []

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        self.asked.append((list(movie_ids), k))
        return [[(m + j, 1.0 / j) for j in range(1, min(k, self.depth) + 1)] for m in movie_ids]


def test_answers_like_the_source_and_remembers_the_longest_list() -> None:
    source = Counting()
    cached = CachedSource(source, size=10)
    assert cached.name == "vector"
    assert cached.candidates([1, 2], 20) == Counting().candidates([1, 2], 20)
    assert cached.candidates([2, 1], 5) == Counting().candidates([2, 1], 5)  # from memory
    assert source.asked == [([1, 2], 20)]
    assert cached.candidates([1, 3], 30) == Counting().candidates([1, 3], 30)  # longer: asked again
    assert source.asked[-1] == ([1, 3], 30)


def test_a_short_list_is_complete() -> None:
    source = Counting(depth=3)
    cached = CachedSource(source, size=10)
    cached.candidates([7], 10)
    assert cached.candidates([7], 50) == [[(8, 1.0), (9, 0.5), (10, 1 / 3)]] and len(source.asked) == 1


def test_least_recently_asked_movies_are_forgotten() -> None:
    source = Counting()
    cached = CachedSource(source, size=2)
    cached.candidates([1], 5)
    cached.candidates([2], 5)
    cached.candidates([1], 5)  # 1 is now the most recent
    cached.candidates([3], 5)  # forgets 2
    source.asked.clear()
    cached.candidates([1, 2, 3], 5)
    assert source.asked == [([2], 5)]
