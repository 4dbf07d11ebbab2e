"""nextwatch online side: settings, stores, recommender strategies and the HTTP API."""

import os

# implicit's ALS runs its own thread pool; OpenBLAS threading on top of it slows it down.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
