"""``bindsearch serve``: the search API over HTTP, and a web page to search by typing, dropping a file or
recording a sound.

The server holds no search logic of its own: its routes turn requests into the API's calls and send the
API's dataclasses back as JSON. ``settings`` (address, token, cap), ``auth`` (who may talk to it),
``uploads`` (multipart read as it streams, capped), ``queries`` (requests to terms and filters),
``routes_search`` and ``routes_items`` (the endpoints), ``state_file`` (how the CLI finds a running server),
``app`` (the FastAPI app), ``static/`` (the page).
"""

from __future__ import annotations

from typing import Any

from .settings import ServerSettings, server_settings

__all__ = ["ServerSettings", "create_app", "server_settings"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported only by what serves: the CLI's client of a running server needs none of it.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
