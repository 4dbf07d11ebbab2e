"""Korean TMDB metadata, one job per module (none of them imports the others' heavy dependencies eagerly).

* `credentials`: the read access token or API key, and their redaction in logs;
* `checkpoint`: the JSON Lines checkpoint of fetched records (resumable, compacted, never trusted blindly);
* `fetcher`: the async fetcher (rate limit, retries, Retry-After);
* `runs`: one fetch run over a checkpoint, merging imported records, writing checkpoints into the catalog;
* `mapping`: TMDB records -> catalog rows, and the dump readers;
* `cli`: ``nextwatch tmdb fetch|collections|import``.
"""
