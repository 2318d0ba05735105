"""HTTP status codes of the errors a request can meet, and the handlers that send each as one line of JSON.

Every error response is ``{"detail": "one line"}``: the same line the CLI prints for a BindsearchError,
the field at fault for a malformed request, and never a traceback.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    BindsearchError,
    DiskFullError,
    LibraryError,
    LibraryLockedError,
    MediaError,
    ReadOnlyLibraryError,
    SpaceError,
    UsageError,
    first_line,
)

log = logging.getLogger("bindsearch.server")


class HTTPError(BindsearchError):
    """A request refused for a reason of its own, with the status that says which."""

    status = 400


class Unauthorized(HTTPError):
    status = 401


class Forbidden(HTTPError):
    status = 403


class NotFound(HTTPError):
    status = 404


class TooLarge(HTTPError):
    status = 413


def status_of(exc: BindsearchError) -> int:
    """The HTTP status of an error bindsearch raised: the client's fault (4xx) or the server's (5xx)."""
    if isinstance(exc, HTTPError):
        return exc.status
    if isinstance(exc, (UsageError, MediaError)):
        return 400
    if isinstance(exc, (ReadOnlyLibraryError, LibraryLockedError)):
        return 409
    if isinstance(exc, DiskFullError):
        return 507
    if isinstance(exc, (LibraryError, SpaceError)):
        return 503
    return 400


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BindsearchError)
    async def _bindsearch(_: Request, exc: BindsearchError) -> JSONResponse:
        return error_response(status_of(exc), first_line(exc))

    @app.exception_handler(RequestValidationError)
    async def _malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, validation_line(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return error_response(exc.status_code, first_line(Exception(detail)), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error answering %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {first_line(exc)}")


def validation_line(exc: RequestValidationError) -> str:
    """The first problem of a malformed request, as 'body.k: Input should be greater than 0'."""
    errors = exc.errors()
    if not errors:
        return "malformed request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        return f"the body is not valid JSON{f' ({reason})' if reason else ''}"
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first_line(Exception(first.get('msg', 'invalid')))}{more}"
