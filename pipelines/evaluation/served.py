"""A client of a running nextwatch service: strategies answered over HTTP, so the evaluator measures what is served."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from services.recommender.base import Recommendation

BATCH_PATH = "/recommendations/batch"


class ServiceError(RuntimeError):
    """The service could not be reached, or answered with an error."""


class ServiceClient:
    """POST /recommendations/batch in chunks, several at a time (httpx's client is thread-safe)."""

    def __init__(self, base_url: str, *, concurrency: int = 4, batch_size: int = 100, timeout: float = 60.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ServiceError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._concurrency = max(1, concurrency)
        self._batch_size = max(1, batch_size)
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=self._concurrency, max_keepalive_connections=self._concurrency),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, strategy: str, movie_ids: Sequence[int], k: int) -> httpx.Response:
        # the in-process evaluator applies no filter, so ask the service for unfiltered lists too
        body = {"movie_ids": [int(m) for m in movie_ids], "strategy": strategy, "k": k, "include_adult": True}
        try:
            return self._http.post(BATCH_PATH, json=body)
        except httpx.HTTPError as exc:
            raise ServiceError(f"cannot reach {self.base_url}: {exc}") from exc

    def available(self, names: Sequence[str], probe_movie: int) -> list[str]:
        """The strategies the service can answer (it says 503 for one whose models are missing)."""
        return [name for name in names if self._post(name, [probe_movie], 1).status_code != 503]

    def recommend(self, strategy: str, movie_ids: Sequence[int], k: int) -> list[list[Recommendation]]:
        """The service's top k for each movie, in order; a degraded answer is an error, not a score."""
        chunks = [list(movie_ids[i : i + self._batch_size]) for i in range(0, len(movie_ids), self._batch_size)]
        with ThreadPoolExecutor(self._concurrency) as pool:
            answers = list(pool.map(lambda chunk: self._chunk(strategy, chunk, k), chunks))
        return [recs for answer in answers for recs in answer]

    def _chunk(self, strategy: str, movie_ids: list[int], k: int) -> list[list[Recommendation]]:
        response = self._post(strategy, movie_ids, k)
        if response.status_code != 200:
            raise ServiceError(
                f"{self.base_url}{BATCH_PATH} answered {response.status_code} for strategy {strategy} "
                f"({len(movie_ids)} movies from {movie_ids[0]}): {response.text[:300]}"
            )
        body: dict[str, Any] = response.json()
        if body.get("degraded"):
            raise ServiceError(
                f"{self.base_url} answered {strategy} degraded (without {', '.join(body['missing'])})"
                ": those are not the strategy's numbers"
            )
        results = body["results"]
        if [int(r["movie_id"]) for r in results] != movie_ids:
            raise ServiceError(f"{self.base_url} answered other movies than asked for strategy {strategy}")
        return [
            [Recommendation(int(i["movie_id"]), float(i["score"]), str(i["source"])) for i in r["items"]]
            for r in results
        ]


class ServedStrategy:
    """One strategy of the running service, with the batch interface the evaluator calls."""

    def __init__(self, client: ServiceClient, name: str) -> None:
        self.name = name
        self._client = client

    def similar(self, movie_id: int, k: int) -> list[Recommendation]:
        return self._client.recommend(self.name, [movie_id], k)[0]

    def similar_batch(self, movie_ids: Sequence[int], k: int) -> list[list[Recommendation]]:
        return self._client.recommend(self.name, movie_ids, k)
