"""The learned order-aware next-item model (SASRec class), trained with PyTorch on CPU in the build.

Importing the package asks torch's OpenMP threads to sleep while they wait (``OMP_WAIT_POLICY=PASSIVE``,
read once when torch loads; a value already in the environment wins). Spinning waiters burn a core each: on
a busy 2-core machine a training step took 3.5-5x the CPU seconds and wall time of the passive one
(BENCHMARKS.md, "Training threads that sleep"), and the model's budget counts CPU seconds.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
