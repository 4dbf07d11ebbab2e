"""TMDB credentials from the settings, and their redaction wherever text may carry them.

``TMDB_READ_ACCESS_TOKEN`` (Bearer header, preferred) or ``TMDB_API_KEY`` (query parameter).  Neither is
ever logged, stored or put into an error message: our messages never carry a URL, and `RedactSecrets`
masks them in httpx's own request log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pipelines.tmdb.errors import MissingCredentials
from services.settings import Settings

_REDACTED = "***"


@dataclass(frozen=True)
class Credentials:
    """A TMDB read access token (Bearer) or API key; repr and str never show them."""

    token: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        token = settings.tmdb.read_access_token.get_secret_value().strip() if settings.tmdb.read_access_token else ""
        api_key = settings.tmdb.api_key.get_secret_value().strip() if settings.tmdb.api_key else ""
        if not token and not api_key:
            raise MissingCredentials(
                "no TMDB credentials: set TMDB_READ_ACCESS_TOKEN (preferred) or TMDB_API_KEY in the environment "
                "or in .env, then run the command again"
            )
        return cls(token=token or None, api_key=None if token else api_key)

    @property
    def method(self) -> str:
        return "read access token" if self.token else "API key"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def params(self) -> dict[str, str]:
        return {} if self.token or not self.api_key else {"api_key": self.api_key}

    def secrets(self) -> list[str]:
        return [s for s in (self.token, self.api_key) if s]

    def __str__(self) -> str:
        return f"Credentials({self.method})"


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


class RedactSecrets(logging.Filter):
    """Masks secrets in records logged by httpx (its request log line carries the URL, api_key too)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message, self.secrets)
        if masked != message:
            record.msg, record.args = masked, None
        return True
