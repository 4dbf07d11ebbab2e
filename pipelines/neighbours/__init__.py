"""Build step of the neighbour tables: each source's top N per catalogue movie, computed once per build."""

from pipelines.neighbours.build import als_table, exact_vector_table, source_table, stored_vectors

__all__ = ["als_table", "exact_vector_table", "source_table", "stored_vectors"]
