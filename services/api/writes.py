"""Who may write (`POST /events`, `DELETE /users/{user_id}`) and how often.

With NEXTWATCH_API_KEYS (keys) or NEXTWATCH_API_KEYS_FILE (their sha256 hex digests, one a line, optionally
marked ` read-only`), a write sends its key in `X-API-Key`: 401 without one or with an unknown one, 403 with a
read-only one. Keys are held only as digests and compared with hmac.compare_digest; no log line holds one.
With neither, writes are accepted from loopback clients only (403 otherwise). Each key (each client without
keys) may write NEXTWATCH_WRITE_RATE times (the `limits` package's moving window, its asyncio flavour, checked on
the event loop: the threaded one starts a timer thread on a write whenever its last has ended, and waits for it
to run): 429 with Retry-After beyond.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import limits
import limits.aio
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from services.api.deps import Responses
from services.api.schemas import ErrorBody
from services.settings import APISettings

log = logging.getLogger(__name__)
KEY_HEADER = "X-API-Key"
READ_ONLY_MARK = "read-only"
HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
LOOPBACK_ONLY = (
    "writes (POST /events, DELETE /users/...) are accepted from loopback clients only: "
    "set NEXTWATCH_API_KEYS or NEXTWATCH_API_KEYS_FILE to accept them from elsewhere"
)
WRITE_ERRORS: Responses = {
    401: {"model": ErrorBody, "description": f"API keys are set and the {KEY_HEADER} header is missing or unknown"},
    403: {"model": ErrorBody, "description": "a read-only key, or (no keys set) a client that is not on loopback"},
    429: {"model": ErrorBody, "description": "more writes than NEXTWATCH_WRITE_RATE: retry after Retry-After seconds"},
}


@dataclass(frozen=True)
class Key:
    """A write key, as its sha256 hex digest."""

    digest: str
    read_only: bool = False


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def read_key_file(path: Path) -> list[Key]:
    """The keys of a digest file: `<sha256 hex>` or `<sha256 hex> read-only` a line (blank lines and `#`
    comments skipped); ValueError naming the first line it cannot read."""
    keys = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        hexdigest, *mark = words
        if not HEX_DIGEST.fullmatch(hexdigest) or mark not in ([], [READ_ONLY_MARK]):
            raise ValueError(f"{path}:{number}: not '<sha256 hex digest>' or '<sha256 hex digest> {READ_ONLY_MARK}'")
        keys.append(Key(hexdigest.lower(), read_only=bool(mark)))
    return keys


class WriteAccess:
    """The write keys (None: none set, loopback clients only) and the per-key rate limit."""

    def __init__(self, api: APISettings) -> None:
        plain = api.api_keys.get_secret_value() if api.api_keys is not None else ""
        keys = [Key(digest(k.strip())) for k in plain.split(",") if k.strip()]
        if api.api_keys_file is not None:
            keys += read_key_file(api.api_keys_file)
        self.keys: list[Key] | None = keys if plain.strip() or api.api_keys_file is not None else None
        self.rate = limits.parse(api.write_rate)
        self.limiter = limits.aio.strategies.MovingWindowRateLimiter(limits.aio.storage.MemoryStorage())

    def log_mode(self) -> None:
        """One line at start when writes are open to loopback clients only."""
        if self.keys is None:
            log.warning(LOOPBACK_ONLY)

    async def check(self, request: Request, key: str | None) -> None:
        """Raise the 401, 403 or 429 a write gets; return when it may go on."""
        if self.keys is None:
            host = request.client.host if request.client is not None else ""
            if not _loopback(host):
                raise HTTPException(status_code=403, detail="writes are accepted from loopback clients only")
            await self._limit(f"client:{host}")
            return
        found = self._find(key) if key else None
        if found is None:
            raise HTTPException(status_code=401, detail=f"a write needs a valid key in the {KEY_HEADER} header")
        if found.read_only:
            raise HTTPException(status_code=403, detail="this key may only read")
        await self._limit(f"key:{found.digest}")

    def _find(self, key: str) -> Key | None:
        """The key whose digest matches, every digest compared in constant time."""
        wanted = digest(key)
        found = None
        for known in self.keys or []:
            if hmac.compare_digest(known.digest, wanted):
                found = known
        return found

    async def _limit(self, who: str) -> None:
        if not await self.limiter.hit(self.rate, who):
            reset = (await self.limiter.get_window_stats(self.rate, who)).reset_time
            wait = max(1, math.ceil(reset - time.time()))
            raise HTTPException(
                status_code=429,
                detail=f"more writes than {self.rate} (NEXTWATCH_WRITE_RATE): retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def check_write(
    request: Request,
    key: Annotated[str | None, Security(APIKeyHeader(name=KEY_HEADER, auto_error=False))],
) -> None:
    """The dependency of every write route."""
    await request.app.state.writes.check(request, key)


WriteAllowed = Depends(check_write)
