"""Shared fakes, factories and servers of the test suite (one place for all of them)."""
