"""Synthetic MovieLens-32M-format releases for the benchmarks (`python -m bench.synth --help`)."""
