"""Stage: embed every movie's content text (cached) and load the vectors into Qdrant."""
