"""Stage: seed 002's next-item protocol, held-out models, metrics with intervals, tuning and the report."""
