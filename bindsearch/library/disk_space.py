"""Telling a full disk from other write failures, so that a user is told it is the disk.

A full disk shows up in many shapes: SQLite's "database or disk is full" (or only "disk I/O
error" when it cannot even make its journal), an OSError with ENOSPC, or a FAISS RuntimeError
that quotes the system's "No space left on device" deep in its message.
"""

from __future__ import annotations

import errno
import os
import sqlite3

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = getattr(sqlite3, "SQLITE_FULL", 13)
_POSTGRES_DISK_FULL = "53100"  # SQLSTATE disk_full
_FULL_WORDS = ("database or disk is full", os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))
# Below this much free space, a write that failed with a bare I/O error is taken for a full disk.
_NEARLY_FULL_BYTES = 1 << 20


def disk_is_full(exc: BaseException, folder: str | os.PathLike[str]) -> bool:
    """Whether ``exc``, raised while writing the library at ``folder``, comes from a full disk.

    Looks through the errors it wraps (SQLAlchemy's ``orig``, the cause or context) too.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            return True
        if getattr(current, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        if getattr(current, "sqlstate", None) == _POSTGRES_DISK_FULL:  # (the server's disk, not this one)
            return True
        text = str(current)
        if any(words in text for words in _FULL_WORDS):
            return True
        if "disk I/O error" in text and free_bytes(folder) < _NEARLY_FULL_BYTES:
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def free_bytes(folder: str | os.PathLike[str]) -> int:
    """Bytes free to this user on the disk of ``folder`` (or of its nearest existing parent); large when unknown."""
    path = os.path.abspath(os.fspath(folder))
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        st = os.statvfs(path)
    except (OSError, AttributeError):
        return 1 << 62
    return st.f_bavail * st.f_frsize


def disk_full_message(folder: str | os.PathLike[str], what_is_kept: str) -> str:
    """One line: the disk is full, what is kept, and what to do."""
    free = free_bytes(folder)
    shown = f"{free // 1024} KiB free" if free < (1 << 40) else "full"
    return (f"the disk holding library {os.fspath(folder)} is full ({shown}): {what_is_kept}; "
            "free some space and run the same command again")
