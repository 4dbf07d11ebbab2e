"""nextwatch offline side: ingestion, catalog, embeddings, ALS, evaluation and the CLI."""

import services  # noqa: F401  (sets OPENBLAS_NUM_THREADS before numpy is imported)
