"""nextwatch online side: settings, stores, recommender strategies and the HTTP API."""

import os

# implicit's ALS runs its own thread pool; OpenBLAS threading on top of it slows it down.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# OpenMP's waiting threads (implicit's and torch's share one libgomp, which reads this once, when the first of
# them loads) sleep instead of spinning: a spinning waiter holds a core the working thread needs, and on a busy
# 2-core machine a learned-model training step took 3-5x the CPU seconds (BENCHMARKS.md, "Training threads
# that sleep"); the model's budget counts CPU seconds.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
