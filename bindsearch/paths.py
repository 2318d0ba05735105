"""Where bindsearch keeps things by default: the library in the user data folder, weights in the cache."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "bindsearch"


def default_library_path() -> Path:
    """``BINDSEARCH_LIBRARY`` if set, else a folder in the user data directory."""
    env = os.environ.get("BINDSEARCH_LIBRARY")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP)) / "library"


def cache_dir() -> Path:
    """Downloaded weights: ``BINDSEARCH_CACHE`` if set, else the user cache directory."""
    env = os.environ.get("BINDSEARCH_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir(APP))


def display_path(path: str) -> str:
    """A path safe to print: undecodable bytes of a file name shown as U+FFFD."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
