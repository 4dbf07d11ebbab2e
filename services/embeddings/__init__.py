"""Embedding backends shared by the offline build (passages) and the API (queries)."""
