"""What a running server holds: the open library (its model loaded once, a tower at a time, as searches
need them), the thumbnail cache, and the lock that lets one request at a time use the library."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from .settings import ServerSettings

if TYPE_CHECKING:
    from ..api import Library
    from ..thumbnails import ThumbnailCache

THUMBNAIL_DIR = "thumbnails"


@dataclass
class ServerState:
    settings: ServerSettings
    library: Library
    thumbnails: ThumbnailCache
    # The library's loaded indexes, its SQLite reads and the model are shared by every request: one at a time
    # (a search takes milliseconds; thumbnails and file transfers run outside the lock).
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def using_library(self) -> Iterator[Library]:
        with self.lock:
            yield self.library


def server_state(request: Request) -> ServerState:
    """The dependency every route takes."""
    return request.app.state.bindsearch


# What a route declares to get the state: ``state: State``.
State = Annotated[ServerState, Depends(server_state)]
