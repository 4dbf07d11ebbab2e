"""Stage: read a MovieLens release (bundled sample, GroupLens folder, zip or URL) into parquet files."""
