"""Stage: the SQL catalog (movie, series) loaded from the ingested release, with series inferred from titles."""
