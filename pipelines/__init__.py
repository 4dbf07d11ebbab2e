"""nextwatch offline side: ingestion, catalog, embeddings, ALS, evaluation and the CLI."""

import services  # noqa: F401  (sets OPENBLAS_NUM_THREADS and OMP_WAIT_POLICY before numpy and the models load)
