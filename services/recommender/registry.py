"""The one registry of sources: each source and each trained model is declared here, once.

Everything that lists sources iterates this module: the strategy names and the strategies built
(`standard.build_strategies`), hybrid's parts and which of them it may do without, the readiness parts
(`/ready`, ``missing``), the API's literals and `/strategies`, the page's labels, the evaluator's fallback
sources, `nextwatch tune`'s search space, the neighbour tables of the `neighbours` step and the runtime's
loading of the trained model set.

A learned source is added by a :class:`ModelSpec` (its artifact: store type, parameters, trainer) and a
:class:`SourceSpec` (how the source is made from it), its source module and its trainer. Trainers and table
builders live in `pipelines/` (they write stores) and are named here by ``"module:function"``, so this
module, like all of `services/`, imports no pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from services.recommender.base import Source
from services.recommender.history import (
    CollaborativeHistorySource,
    IgnoringHistory,
    LearnedHistorySource,
    LearnedSource,
    SequentialHistorySource,
    SeriesHistorySource,
    VectorHistorySource,
)
from services.recommender.sequential_sources import RecentPopularSource, SequentialSource
from services.recommender.sources import (
    CollaborativeSource,
    PopularSource,
    RandomSource,
    SeriesSource,
    VectorIndex,
    VectorSource,
)
from services.settings import ContentSettings, HistorySettings, Settings
from services.stores.catalog import NO_SERIES, MovieFacts
from services.stores.collaborative import ALSParams, CollaborativeModel
from services.stores.histories import UserHistories
from services.stores.order_model import OrderModel, OrderParams
from services.stores.popularity import Counts, RecentParams
from services.stores.sequential import SequentialModel, SequentialParams


class Artifact(Protocol):
    """What a trained model's store type offers: saved to and loaded from its directory."""

    def save(self, directory: Path) -> None: ...


@dataclass(frozen=True)
class ModelSpec:
    """One artifact of the trained model set (trained on the ratings before an optional cutoff).

    `store` loads it (``store.load(dir)``, ``store.exists(dir)``); `params` reads its parameters (a
    dataclass: they are its fingerprint) from the (tuned) settings; `trainer` names the pipeline function
    ``trainer(ratings_before_cutoff, params, cutoff=..., progress=...) -> artifact``. `events`: the served set's
    model also learns from viewers' events (folded into its ratings by the build); the viewer histories do not
    (the server reads events live, so folding them in would count them twice and keep forgotten ones).
    `slow`: a quick build (the first generation `make run` serves) leaves it for the next full build.
    """

    name: str
    store: Any
    params: Callable[[Settings], Any]
    trainer: str
    events: bool = True
    slow: bool = False


@dataclass(frozen=True)
class SourceInputs:
    """What sources are made from: catalogue facts, the loaded models, the vector index, the seed, how
    history sources read a history, and what the content sources are made from."""

    facts: MovieFacts
    models: Mapping[str, Any]
    vectors: VectorIndex | None
    seed: int
    history: HistorySettings = HistorySettings()
    content: ContentSettings = ContentSettings()


@dataclass(frozen=True)
class TableSpec:
    """A source's precomputed neighbour table: `builder` names the pipeline function that computes it
    (``builder(settings, models_dir) -> NeighbourTable``); `complete`: it has a row for every movie the live
    source knows (a movie without one has no answer, so the live source is not asked)."""

    builder: str
    complete: bool = False


@dataclass(frozen=True)
class SourceSpec:
    """One candidate source and what the product does with it.

    - `make` builds it from :class:`SourceInputs` (None when what it reads is missing); `history` builds its
      history form, which takes a :class:`History` per query (None: the source has no history form);
    - `part`: the readiness part reported missing when it cannot be made or fails (None: always there);
    - `model`: the model of the trained set it reads (its table lives beside it);
    - `store_backed`: its calls reach a store (time limits and caches wrap them);
      `history_store_backed`: its history form's calls do (a time limit wraps them; ALS folding a viewer in
      is arithmetic on models in memory, a vector search is a store call);
    - `degradable`: hybrid answers without it when it fails while serving;
    - `chain`: its own strategy (named after it) asks these sources after it, in order (None: no own strategy);
    - `table`: the build precomputes its one-movie lists for every movie (the server answers from them, and the
      live source what they cannot answer);
    - `fusable`: hybrid may weight it (tuning searches its weight); `fallback`: it fills short lists;
    - `tunable`: the settings (flat names) `nextwatch tune` chooses for it;
    - `explains`: its one-movie lists say which history movies led to an item (not so for sources that do not
      depend on their query: popular, recent-popular, random);
    - `label`, `display`: how lists and the page show it (lower `display` first).
    """

    name: str
    label: str
    display: int
    make: Callable[[SourceInputs], Source | None]
    history: Callable[[SourceInputs], Source | None] | None = None
    part: str | None = None
    model: str | None = None
    store_backed: bool = False
    history_store_backed: bool = False
    degradable: bool = False
    chain: tuple[str, ...] | None = ("random",)
    fusable: bool = True
    fallback: bool = False
    table: TableSpec | None = None
    tunable: tuple[str, ...] = ()
    explains: bool = True


@dataclass(frozen=True)
class CompositeSpec:
    """A strategy made of sources in order (seed 002's series+vector), shown with `label` at `display`."""

    name: str
    label: str
    display: int
    chain: tuple[str, ...]


@dataclass
class Registry:
    """The declared models, sources and composite strategies, in declaration order."""

    models: dict[str, ModelSpec] = field(default_factory=dict)
    sources: dict[str, SourceSpec] = field(default_factory=dict)
    composites: dict[str, CompositeSpec] = field(default_factory=dict)

    def add(self, spec: ModelSpec | SourceSpec | CompositeSpec) -> None:
        table: dict[str, Any] = (
            self.models
            if isinstance(spec, ModelSpec)
            else self.sources
            if isinstance(spec, SourceSpec)
            else self.composites
        )
        if spec.name in table:
            raise ValueError(f"{spec.name!r} is registered already")
        table[spec.name] = spec


REGISTRY = Registry()
HYBRID = "hybrid"
HYBRID_LABEL = "Hybrid (fused)"
# hybrid's settings (one movie, and over a history) `nextwatch tune` chooses
FUSION_TUNABLE = (
    "fusion_weights",
    "fusion_rank_constant",
    "history_last",
    "history_decay",
    "history_sequential",
    "history_weights",
    "history_rank_constant",
)


def _model(name: str) -> Callable[[SourceInputs], Any]:
    return lambda inputs: inputs.models.get(name)


def _counts(inputs: SourceInputs) -> dict[int, int]:
    """Popularity: rating counts before the cutoff, else the catalogue's."""
    counts = inputs.models.get("popularity")
    return counts.counts if counts is not None else dict(zip(inputs.facts.movie_ids, inputs.facts.rating_counts))


def _recent(inputs: SourceInputs) -> dict[int, int] | None:
    counts = inputs.models.get("recent-popular")
    return counts.counts if counts is not None and counts.counts else None


def _maybe(
    make: Callable[[Any], Source], read: Callable[[SourceInputs], Any]
) -> Callable[[SourceInputs], Source | None]:
    """A source made from what `read` finds, None when it finds nothing."""

    def build(inputs: SourceInputs) -> Source | None:
        found = read(inputs)
        return make(found) if found is not None else None

    return build


def _ignoring(make: Callable[[SourceInputs], Source | None]) -> Callable[[SourceInputs], Source | None]:
    """The history form of a source that does not depend on its query."""

    def build(inputs: SourceInputs) -> Source | None:
        source = make(inputs)
        return IgnoringHistory(source) if source is not None else None

    return build


def _series(inputs: SourceInputs) -> SeriesSource:
    """TMDB collections and series inferred from titles (negative ids); with content series "real", the
    collections only."""
    facts = inputs.facts
    members = facts.series != NO_SERIES  # only the movies of a series become Python values
    if inputs.content.series == "real":
        members &= facts.series >= 0
    return SeriesSource(facts.ids[members].tolist(), facts.series[members].tolist(), facts.released[members].tolist())


def _random(inputs: SourceInputs) -> Source:
    return RandomSource(inputs.facts.ids, inputs.seed)


def _popular(inputs: SourceInputs) -> Source:
    return PopularSource(_counts(inputs))


def _recent_popular(inputs: SourceInputs) -> Source | None:
    counts = _recent(inputs)
    return RecentPopularSource(counts) if counts is not None else None


def _reading(make: Callable[[Any, int, float], Source], read: Callable[[SourceInputs], Any]) -> Any:
    """A history source over what `read` finds, reading the last movies with the history settings' decay."""

    def build(inputs: SourceInputs) -> Source | None:
        found = read(inputs)
        return make(found, inputs.history.last, inputs.history.decay) if found is not None else None

    return build


def _sequential_history(inputs: SourceInputs) -> Source | None:
    """Sequential over a history, with the history settings' L, decay and scoring."""
    model = inputs.models.get("sequential")
    if model is None:
        return None
    history = inputs.history
    return SequentialHistorySource(model, history.last, history.decay, scoring=history.sequential)


def _learned_history(inputs: SourceInputs) -> Source | None:
    """The learned model over a history's last `history.learned_last` movies."""
    model = inputs.models.get("learned")
    return LearnedHistorySource(model, inputs.history.learned_last) if model is not None else None


def sequential_params(settings: Settings) -> SequentialParams:
    """The sequential model's parameters from the (tuned) settings."""
    return SequentialParams(**settings.sequential.model_dump(exclude={"recent_popular_days"}))


for _spec in (
    ModelSpec("als", CollaborativeModel, lambda s: ALSParams(**s.als.model_dump()), "pipelines.models.trainers:als"),
    ModelSpec("sequential", SequentialModel, sequential_params, "pipelines.models.trainers:sequential"),
    ModelSpec("popularity", Counts, lambda s: None, "pipelines.models.trainers:popularity"),
    ModelSpec(
        "recent-popular",
        Counts,
        lambda s: RecentParams(s.sequential.recent_popular_days),
        "pipelines.models.trainers:recent_popularity",
    ),
    ModelSpec("histories", UserHistories, lambda s: None, "pipelines.models.trainers:histories", events=False),
    ModelSpec(
        "learned",
        OrderModel,
        lambda s: OrderParams(**s.learned.model_dump()),
        "pipelines.models.trainers:learned",
        slow=True,
    ),
    SourceSpec(
        "random", "Random", 90, _random, _ignoring(_random), chain=(), fusable=False, fallback=True, explains=False
    ),
    SourceSpec(
        "popular", "Popular", 80, _popular, _ignoring(_popular), chain=(), fusable=False, fallback=True, explains=False
    ),
    SourceSpec(
        "recent-popular",
        "Recently popular",
        70,
        _recent_popular,
        _ignoring(_recent_popular),
        model="recent-popular",
        chain=("popular", "random"),
        tunable=("recent_popular_days",),
        explains=False,
    ),
    SourceSpec("series", "Same series", 30, _series, _reading(SeriesHistorySource, _series)),
    SourceSpec(
        "vector",
        "Similar story",
        40,
        _maybe(VectorSource, lambda i: i.vectors),
        _reading(VectorHistorySource, lambda i: i.vectors),
        part="vectors",
        store_backed=True,
        history_store_backed=True,
        degradable=True,
        table=TableSpec("pipelines.neighbours.build:vector_table_of"),
    ),
    SourceSpec(
        "collaborative",
        "Viewers also liked",
        20,
        _maybe(CollaborativeSource, _model("als")),
        _maybe(CollaborativeHistorySource, _model("als")),
        part="collaborative",
        model="als",
        store_backed=True,
        degradable=True,
        table=TableSpec("pipelines.neighbours.build:als_table_of", complete=True),
        tunable=("als_factors", "als_regularization", "als_alpha", "als_iterations"),
    ),
    SourceSpec(
        "sequential",
        "Watched next",
        10,
        _maybe(SequentialSource, _model("sequential")),
        _sequential_history,
        part="sequential",
        model="sequential",
        degradable=True,
        tunable=("sequential_window", "sequential_backward_weight", "sequential_popularity_damping"),
    ),
    SourceSpec(
        "learned",
        "Learned order",
        15,
        _maybe(LearnedSource, _model("learned")),
        _learned_history,
        part="learned",
        model="learned",
        degradable=True,
        table=TableSpec("pipelines.neighbours.build:learned_table_of", complete=True),
    ),
    CompositeSpec("series+vector", "Series, then similar story", 50, ("series", "vector", "random")),
):
    REGISTRY.add(_spec)


def strategy_names() -> tuple[str, ...]:
    """Every strategy `strategy=` takes: each source's own, the composites, then hybrid."""
    own = [s.name for s in REGISTRY.sources.values() if s.chain is not None]
    return (*own, *REGISTRY.composites, HYBRID)


def display_order() -> tuple[str, ...]:
    """Strategy names as a page lists them: hybrid, then its parts from the strongest, the baselines last."""
    shown = {c.name: c.display for c in REGISTRY.composites.values()}
    shown.update({s.name: s.display for s in REGISTRY.sources.values() if s.chain is not None})
    return (HYBRID, *sorted(shown, key=lambda n: (shown[n], n)))


def labels() -> dict[str, str]:
    """Each strategy's label for lists and the page."""
    found = {s.name: s.label for s in REGISTRY.sources.values()}
    found.update({c.name: c.label for c in REGISTRY.composites.values()})
    return {HYBRID: HYBRID_LABEL, **found}


def parts() -> tuple[str, ...]:
    """The readiness parts: the catalog, then every part a source depends on."""
    return ("catalog", *dict.fromkeys(s.part for s in REGISTRY.sources.values() if s.part))


def degradable() -> tuple[str, ...]:
    """Hybrid's sources it answers without when they fail while serving."""
    return tuple(s.name for s in REGISTRY.sources.values() if s.degradable)


def fallback_sources() -> frozenset[str]:
    """Sources that fill a list when a strategy's own source has nothing."""
    return frozenset(s.name for s in REGISTRY.sources.values() if s.fallback)


def explaining() -> tuple[str, ...]:
    """The sources whose one-movie lists explain a history answer."""
    return tuple(s.name for s in REGISTRY.sources.values() if s.explains)


def fusable() -> tuple[str, ...]:
    """The sources hybrid may weight."""
    return tuple(s.name for s in REGISTRY.sources.values() if s.fusable)


def part_of_source() -> dict[str, str]:
    """The part each source depends on, for the sources that have one."""
    return {s.name: s.part for s in REGISTRY.sources.values() if s.part}


def store_parts() -> dict[str, str]:
    """The part each store-backed source's calls depend on (their time limit is that part's)."""
    return {s.name: s.part for s in REGISTRY.sources.values() if s.store_backed and s.part}


def tunable() -> tuple[str, ...]:
    """Every setting `nextwatch tune` chooses (flat names, as in tuned.json)."""
    return (*(t for s in REGISTRY.sources.values() for t in s.tunable), *FUSION_TUNABLE)


def make_sources(inputs: SourceInputs) -> dict[str, Source | None]:
    """Every registered source made from `inputs` (None where what it reads is missing)."""
    return {name: spec.make(inputs) for name, spec in REGISTRY.sources.items()}


def make_history_sources(inputs: SourceInputs) -> dict[str, Source | None]:
    """Every registered source's history form made from `inputs` (None where it has none or what it reads
    is missing)."""
    return {name: spec.history(inputs) if spec.history else None for name, spec in REGISTRY.sources.items()}


@contextmanager
def registered(*specs: ModelSpec | SourceSpec | CompositeSpec) -> Iterator[None]:
    """Register `specs` for the duration of the block (tests, experiments)."""
    for spec in specs:
        REGISTRY.add(spec)
    try:
        yield
    finally:
        for spec in specs:
            for table in (REGISTRY.models, REGISTRY.sources, REGISTRY.composites):
                if table.get(spec.name) is spec:
                    del table[spec.name]
