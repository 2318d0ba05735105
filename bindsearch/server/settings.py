"""How a server is run: its library, address, token and upload cap; and the rule on who may reach it."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 100.0
TOKEN_ENV = "BINDSEARCH_TOKEN"


@dataclass(frozen=True)
class ServerSettings:
    """``library`` and ``space`` as ``open_library`` takes them; ``token`` None only on a loopback address,
    where requests need none (the server still makes one up for the CLI, see ``state_file``)."""

    library: Path | None = None
    space: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024)

    @property
    def requires_token(self) -> bool:
        return self.token is not None


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``: addresses only this machine reaches."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_settings(library: Path | None, space: str | None, host: str, port: int, token: str | None,
                    max_upload_mb: float) -> ServerSettings:
    """Checked settings: a token (given, or from ``BINDSEARCH_TOKEN``) is required on any address but
    loopback; the cap and port must make sense."""
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    if token is not None and (len(token) < 8 or not token.isprintable() or " " in token):
        raise UsageError("a token must be at least 8 printable characters without spaces "
                         "(make one with: python -c 'import secrets; print(secrets.token_urlsafe())')")
    if not is_loopback(host) and token is None:
        raise UsageError(f"serving on {host} lets other machines in: give --token T (or set {TOKEN_ENV}); "
                         f"make one with: python -c 'import secrets; print(secrets.token_urlsafe())'")
    if not max_upload_mb > 0:
        raise UsageError(f"--max-upload-mb must be more than 0 (got {max_upload_mb})")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535 (got {port})")
    return ServerSettings(library=library, space=space, host=host, port=port, token=token,
                          max_upload_bytes=int(max_upload_mb * 1024 * 1024))


def new_token() -> str:
    return secrets.token_urlsafe(24)
