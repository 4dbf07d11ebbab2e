"""What stops a TMDB command: each message names the problem and the command that fixes it."""
from __future__ import annotations


class TmdbError(RuntimeError):
    """A TMDB run that cannot go on (no credentials, credentials refused)."""


class MissingCredentials(TmdbError):
    pass


class TmdbAuthError(TmdbError):
    pass
