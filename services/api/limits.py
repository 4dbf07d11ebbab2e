"""Request bodies within limits: at most `max_bytes` (413), sent within `seconds` of the request (408).

A pure ASGI middleware that reads the whole body before the app sees it (FastAPI reads it whole anyway),
so a body too large is refused as soon as its size is declared or counted, and a client that stops
sending half-way loses its connection instead of holding it.
"""

from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """More bytes arrived than the limit."""


class BodyLimit:
    """Refuses bodies over `max_bytes` (413) and bodies not sent in full within `seconds` (408)."""

    def __init__(self, app: ASGIApp, max_bytes: int, seconds: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ())) if scope["type"] == "http" else {}
        if b"content-length" not in headers and b"transfer-encoding" not in headers:  # no body (or not HTTP)
            await self.app(scope, receive, send)
            return
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await self._refuse(413, f"the request body is over {self.max_bytes} bytes", scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.seconds):
                message = await self._read(receive)
        except BodyTooLarge:
            await self._refuse(413, f"the request body is over {self.max_bytes} bytes", scope, receive, send)
            return
        except TimeoutError:
            await self._refuse(408, f"the request body was not sent within {self.seconds:g} s", scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return message

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> Message:
        """The whole body as one message (or the client's disconnect)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    @staticmethod
    async def _refuse(status: int, detail: str, scope: Scope, receive: Receive, send: Send) -> None:
        """One-line JSON error; the connection is closed, as the rest of the body is never read."""
        response = JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close"})
        await response(scope, receive, send)
