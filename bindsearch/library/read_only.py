"""Libraries that cannot be written (read-only media, another user's folder): opened with SQLite's
read-only modes, searched with indexes kept in memory, and every change refused in one place."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from ..errors import ReadOnlyLibraryError


def why_read_only(folder: Path, db_path: Path | None) -> str | None:
    """Why this process cannot write the library (the first reason found), or None when it can. A database
    server (``db_path`` None) says so itself when this user may not write to it."""
    if not os.access(folder, os.W_OK):
        return "its folder is not writable"
    if db_path is None:
        return None
    for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        if os.path.exists(path) and not os.access(path, os.W_OK):
            return f"{path.name} is not writable"
    return None


def read_only_uris(db_path: Path) -> list[str]:
    """The SQLite URIs to try, in turn, to read the database without writing a byte.

    ``mode=ro`` sees commits still in the write-ahead log, but needs its -wal and
    -shm files to exist already (it may not create them in a read-only folder).
    ``immutable=1`` needs nothing writable and takes no locks; with no -wal file
    the main file holds every commit, so it misses nothing then.
    """
    base = "file:" + quote(os.fspath(db_path))
    return [f"{base}?mode=ro", f"{base}?immutable=1"]


def refuse(library: Path, reason: str, action: str) -> ReadOnlyLibraryError:
    """The one error every change to a read-only library gets (raise it)."""
    return ReadOnlyLibraryError(f"library {library} is read-only ({reason}): cannot {action}")
