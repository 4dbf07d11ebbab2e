"""What the content sources are made from, chosen on the validation window (`nextwatch tune`).

- the embedded text (`content_text`): "overview" (today's default: the overview, else title, year and genres),
  "title" (title, year and genres only) or "both" (title, year, genres and the overview), scored by the
  `vector` strategy over vectors searched exactly in memory (numpy cosine; the Qdrant collection is untouched);
- the series (`content_series`): "both" (TMDB collections, else series inferred from titles) or "real"
  (TMDB collections only), scored by the `series` strategy.

A variant replaces the default only when it wins on the validation pairs by more than noise: the paired
user-bootstrap 95% interval of its HR@k difference from the default lies above 0. Variants that give the same
input for every movie (no overviews: "overview" is "title"; no inferred series: "real" is "both") are scored
once and said to be the same. Vectors come from the embedding cache; the texts missing from it are embedded
with the configured backend only up to `budget` of them (the local model embeds ~60 texts/s on 2 cores),
unless `embed` asks for all (`--content-embed`); otherwise the text choice is skipped and the evidence says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipelines.embeddings.cached import embed_cached
from pipelines.embeddings.plan import plan_embedding
from pipelines.embeddings.texts import TEXT_VARIANTS, content_text
from pipelines.evaluation.metrics import StrategyScore, compare_paired, evaluate_strategies
from pipelines.evaluation.protocol import ratings_fingerprint, utc
from services.embeddings.backends import EmbeddingBackend, make_backend
from services.recommender.filters import ItemFacts
from services.recommender.registry import SourceInputs, make_sources
from services.recommender.sources import VectorIndex
from services.recommender.standard import FusionConfig, build_strategies
from services.settings import ContentSettings, Settings
from services.stores.catalog import Catalog, MovieFacts
from services.stores.embedding_cache import EmbeddingCache, text_hash
from services.stores.generations import resolve_generation

SERIES_OPTIONS = ("both", "real")
# texts missing from the embedding cache that the choice embeds without being asked (~35 s with the local model)
EMBED_BUDGET = 2000
DEFAULT = ContentSettings()
_ALONE = FusionConfig({}, 50, 60.0)  # the strategies scored alone need no fusion


class MemoryVectors:
    """An exact cosine index over a matrix held in memory (what Qdrant answers, computed with numpy)."""

    def __init__(self, ids: Sequence[int], matrix: np.ndarray, block: int = 512) -> None:
        m = np.asarray(matrix, dtype=np.float32)
        self.ids = np.asarray(ids, dtype=np.int64)
        self.m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        self._pos = {int(i): p for p, i in enumerate(self.ids.tolist())}
        self._block = block

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        return {int(i): self.m[self._pos[int(i)]] for i in ids if int(i) in self._pos}

    def search_batch(
        self, vectors: np.ndarray, k: int, exclude: Sequence[Sequence[int]] | None = None
    ) -> list[list[tuple[int, float]]]:
        queries = np.asarray(vectors, dtype=np.float32).reshape(-1, self.m.shape[1])
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        excluded = exclude or [[]] * len(queries)
        out: list[list[tuple[int, float]]] = []
        for start in range(0, len(queries), self._block):
            sims = queries[start : start + self._block] @ self.m.T
            for row, skip in zip(sims, excluded[start : start + self._block]):
                for m in skip:
                    if int(m) in self._pos:
                        row[self._pos[int(m)]] = -np.inf
                wanted = min(int(k), len(row))
                if wanted <= 0:
                    out.append([])
                    continue
                top = np.argpartition(-row, wanted - 1)[:wanted]
                top = top[np.lexsort((self.ids[top], -row[top]))]  # highest first, ties by movie id
                out.append([(int(self.ids[i]), float(row[i])) for i in top if np.isfinite(row[i])])
        return out


def choose_content(
    settings: Settings,
    ratings: pd.DataFrame,
    facts: MovieFacts,
    validation_pairs: pd.DataFrame,
    cutoff: int,
    k: int,
    *,
    embed: bool = False,
    budget: int = EMBED_BUDGET,
    rows: Iterable[Mapping[str, Any]] | None = None,
    backend: EmbeddingBackend | None = None,
    cache: EmbeddingCache | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Choose `content_text` and `content_series` on `validation_pairs` (prev_movieId -> movieId, userId; the
    pairs `tune` validates on, all after `cutoff`); returns {"settings": {"content_text", "content_series"},
    "trials": {"text", "series"}, ...the evidence}.

    `embed`: embed every text missing from the embedding cache (else at most `budget`, or the text choice is
    skipped). `rows` (the catalogue's content rows), `backend` and `cache` default to the settings' own."""
    started = time.perf_counter()
    seed = settings.protocol.seed
    resamples = max(settings.protocol.bootstrap_resamples, 200)
    items = ItemFacts(facts.movie_ids, facts.genres, facts.adult)
    size = len(facts.movie_ids)
    users = validation_pairs["userId"].to_numpy()

    def score(strategy: str, vectors: VectorIndex | None, content: ContentSettings) -> StrategyScore:
        sources = make_sources(SourceInputs(facts, {}, vectors, seed, content=content))
        built = build_strategies(sources, _ALONE, facts=items)[strategy]
        return evaluate_strategies({strategy: built}, validation_pairs, k, size, resamples=0)[strategy]

    def judge(strategy: str, scores: dict[str, StrategyScore], same_as: dict[str, str], default: str) -> dict[str, Any]:
        """Each variant's scores and its paired difference from the default; the choice."""
        trials: dict[str, Any] = {}
        winners = []
        for variant, s in scores.items():
            trial: dict[str, Any] = {
                f"hr@{k}": s.hit_ratio,
                f"ndcg@{k}": s.ndcg,
                f"mrr@{k}": s.mrr,
                "answered": s.answered,
            }
            if variant in same_as:
                trial["same_as"] = same_as[variant]
            elif variant != default:
                paired = compare_paired(
                    s,
                    scores[default],
                    users,
                    f"{strategy} ({variant})",
                    f"{strategy} ({default})",
                    k,
                    resamples=resamples,
                    seed=seed,
                    note="the default, on the validation pairs",
                )
                trial["against_default"] = paired.as_dict()
                if paired.interval[0] > 0:
                    winners.append(variant)
            trials[variant] = trial
        chosen = max(winners, key=lambda v: (scores[v].hit_ratio, scores[v].ndcg)) if winners else default
        return {"chosen": chosen, "variants": trials}

    # -- series --------------------------------------------------------------------------------------
    inferred = sum(1 for s in facts.series_ids if s is not None and s < 0)
    series_scores: dict[str, StrategyScore] = {DEFAULT.series: score("series", None, DEFAULT)}
    series_same: dict[str, str] = {}
    if inferred:
        series_scores["real"] = score("series", None, ContentSettings(series="real"))
    else:
        series_scores["real"] = series_scores[DEFAULT.series]
        series_same["real"] = DEFAULT.series
    series = {
        **judge("series", series_scores, series_same, DEFAULT.series),
        "movies_in_series": sum(1 for s in facts.series_ids if s is not None),
        "movies_in_inferred_series": inferred,
    }
    if not inferred:
        series["note"] = "no inferred series: both options are the same series"
    say(_describe("series", series, k))

    # -- text ----------------------------------------------------------------------------------------
    text = _choose_text(settings, rows, backend, cache, embed, budget, score, judge, say)
    say(_describe("vector", text, k))
    return {
        "settings": {"content_text": text["chosen"], "content_series": series["chosen"]},
        "chosen_by": f"hr@{k} of the vector and series strategies on the validation pairs; a variant over the "
        "default only when the paired user-bootstrap 95% interval of its HR difference lies above 0",
        "validation": {
            "pairs": len(validation_pairs),
            "users": int(validation_pairs["userId"].nunique()),
            "cutoff": utc(cutoff),
            "data": ratings_fingerprint(ratings),
        },
        "trials": {"text": text, "series": series},
        "seconds": round(time.perf_counter() - started, 2),
    }


def _choose_text(
    settings: Settings,
    rows: Iterable[Mapping[str, Any]] | None,
    backend: EmbeddingBackend | None,
    cache: EmbeddingCache | None,
    embed: bool,
    budget: int,
    score: Callable[[str, VectorIndex | None, ContentSettings], StrategyScore],
    judge: Callable[..., dict[str, Any]],
    say: Callable[[str], None],
) -> dict[str, Any]:
    if rows is None:
        catalog = Catalog(resolve_generation(settings).catalog_url, read_only=True)
        try:
            rows = list(catalog.content_rows())
        finally:
            catalog.close()
    movies = [dict(r) for r in rows]
    ids = [int(r["movie_id"]) for r in movies]
    texts = {variant: [content_text(r, variant) for r in movies] for variant in TEXT_VARIANTS}
    overviews = sum(1 for r in movies if (r.get("overview") or "").strip())
    same_as: dict[str, str] = {}
    digests: dict[tuple[str, ...], str] = {}
    for variant in (DEFAULT.text, *(v for v in TEXT_VARIANTS if v != DEFAULT.text)):
        key = tuple(text_hash(t) for t in texts[variant])
        if key in digests:
            same_as[variant] = digests[key]
        else:
            digests[key] = variant
    evidence: dict[str, Any] = {"movies": len(movies), "movies_with_overview": overviews}
    if same_as:
        evidence["note"] = ", ".join(f'"{v}" gives the same texts as "{w}"' for v, w in same_as.items())
    distinct = [v for v in TEXT_VARIANTS if v not in same_as]
    if len(distinct) == 1:
        return {"chosen": DEFAULT.text, "skipped": "every variant gives the same texts: nothing to choose", **evidence}

    own_cache = cache is None
    cache = EmbeddingCache(settings.embedding_cache_path) if cache is None else cache
    try:
        backend = make_backend(settings) if backend is None else backend
        wanted = [t for v in distinct for t in texts[v]]
        plan = plan_embedding(backend, cache, wanted)
        evidence.update(model=backend.model, distinct_texts=plan.unique, cached=plan.cached, to_embed=plan.to_embed)
        if plan.to_embed > budget and not embed:
            return {
                "chosen": DEFAULT.text,
                "skipped": f"{plan.to_embed:,} texts are not in the embedding cache (more than {budget:,}): "
                "pass --content-embed to embed them and choose the text",
                **evidence,
            }
        say(f"tune: content texts: {plan.to_embed:,} of {plan.unique:,} to embed ({backend.model})")
        scores: dict[str, StrategyScore] = {}
        for variant in distinct:
            matrix, _ = embed_cached(backend, cache, texts[variant], progress=False)
            scores[variant] = score("vector", MemoryVectors(ids, matrix), ContentSettings(text=variant))
    finally:
        if own_cache:
            cache.close()
    for variant, other in same_as.items():
        scores[variant] = scores[other]
    ordered = {v: scores[v] for v in (DEFAULT.text, *(v for v in TEXT_VARIANTS if v != DEFAULT.text))}
    return {**judge("vector", ordered, same_as, DEFAULT.text), **evidence}


def _describe(strategy: str, trial: Mapping[str, Any], k: int) -> str:
    if "variants" not in trial:
        return f"tune: {strategy} input kept ({trial['chosen']}): {trial.get('skipped', '')}"
    scored = ", ".join(
        f"{v} {t[f'hr@{k}']:.4f}" + (f" (= {t['same_as']})" if "same_as" in t else "")
        for v, t in trial["variants"].items()
    )
    return f"tune: {strategy} HR@{k} by input: {scored} -> {trial['chosen']}"
