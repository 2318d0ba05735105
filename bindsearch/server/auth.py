"""Who may talk to the server: a token on any address but loopback, and requests that come from its own page.

Pure ASGI middleware, so that it runs before routing and for every route (static files, docs, media).

- With a token, a request carries it as ``Authorization: Bearer T`` or in the cookie that ``/?token=T``
  sets (so that ``<img>`` and ``<video>`` links of the page work); anything else gets 401.
- The ``Host`` header must name the address the server listens on (or, on loopback, ``localhost``): a web
  page elsewhere that points a name of its own at 127.0.0.1 (DNS rebinding) is refused.
- A request that changes or reads with a body (POST) and says it comes from another web origin is refused,
  so that a page on another site cannot make a visitor's browser use the server behind their back.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .settings import ServerSettings, is_loopback

COOKIE = "bindsearch_token"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]  # an ASGI application


class AccessControl:
    def __init__(self, app: App, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        host = headers.get("host", "")
        if not self._host_allowed(host):
            await _refuse(send, 421 if host else 400, f"this server does not answer for host {host or '(none)'}")
            return
        origin = headers.get("origin")
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and origin is not None \
                and urlsplit(origin).netloc.lower() != host.lower():
            await _refuse(send, 403, f"requests from {origin} are not accepted")
            return
        token = self.settings.token
        if token is None:
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if scope["path"] == "/" and "token" in query:
            if hmac.compare_digest(query["token"][0].encode(), token.encode()):
                await _set_cookie_and_go_home(send, token)
            else:
                await _refuse(send, 401, "wrong token")
            return
        if self._carries_token(headers, token):
            await self.app(scope, receive, send)
            return
        await _refuse(send, 401, "this server needs its token: open /?token=T once, or send "
                                 "Authorization: Bearer T", {"www-authenticate": "Bearer"})

    def _host_allowed(self, host: str) -> bool:
        name = urlsplit(f"//{host}").hostname or ""
        if is_loopback(self.settings.host):
            return is_loopback(name)
        # On another address: the address itself, or any name of it (a token guards the rest).
        return bool(name)

    @staticmethod
    def _carries_token(headers: dict[str, str], token: str) -> bool:
        wanted = token.encode()
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), wanted):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header carries no token
            return False
        return COOKIE in cookie and hmac.compare_digest(cookie[COOKIE].value.encode(), wanted)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _refuse(send: Send, status: int, detail: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _set_cookie_and_go_home(send: Send, token: str) -> None:
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", b"/"), (b"set-cookie", cookie.encode()), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
