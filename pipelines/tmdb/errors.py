"""What stops a TMDB command: each message names the problem and the command that fixes it."""

from __future__ import annotations


class TmdbError(RuntimeError):
    """A TMDB run that cannot go on (no credentials, credentials refused, a damaged checkpoint)."""


class MissingCredentials(TmdbError):
    """Neither TMDB_READ_ACCESS_TOKEN nor TMDB_API_KEY is set."""


class TmdbAuthError(TmdbError):
    """TMDB refused the credentials (HTTP 401)."""


class CheckpointError(TmdbError):
    """A checkpoint line before the last one is unreadable: the file was damaged, not cut short by a crash."""
