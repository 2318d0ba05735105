"""A cap on request bodies other than uploads (JSON searches, tags), so that a huge body cannot fill memory.

Multipart uploads have their own cap, enforced while they stream (``uploads``); everything else is small
by nature: past ``MAX_JSON_BYTES`` it is refused with 413, at once when its length is declared, else as the
bytes arrive.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException

from .auth import App, Receive, Scope, Send
from .errors import error_response

MAX_JSON_BYTES = 1024 * 1024

class BodyLimit:
    def __init__(self, app: App, limit: int = MAX_JSON_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        if headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data"):
            await self.app(scope, receive, send)
            return
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await error_response(413, self._message())(scope, receive, send)
            return
        received = 0

        async def counting() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # (an HTTPException: FastAPI turns any other error met reading a body into a 400)
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counting, send)

    def _message(self) -> str:
        return f"the request body is larger than {self.limit // 1024} KiB (upload files as multipart/form-data)"
