"""SQLite's quick check: pages damaged behind a valid header are found before a run builds on them."""

from __future__ import annotations

import sqlite3
from typing import Any

from ..errors import LibraryError


def damage(conn: Any) -> str | None:
    """The first problem ``PRAGMA quick_check`` finds in the database, or None when it finds none.

    quick_check reads every page and checks its structure (not that each index
    matches its table, which integrity_check does at several times the cost).
    """
    cursor = conn.cursor()  # (a DB-API connection, or the pool's proxy of one)
    try:
        rows = cursor.execute("PRAGMA quick_check(1)").fetchall()
    except sqlite3.DatabaseError as exc:  # so damaged that the check itself cannot run
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    finally:
        cursor.close()
    first = rows[0][0] if rows else "ok"
    return None if first == "ok" else str(first).splitlines()[0]


def refuse_if_damaged(conn: Any, library: str) -> None:
    """LibraryError naming what is damaged, with what to do about it."""
    problem = damage(conn)
    if problem is not None:
        raise damaged(library, problem)


def damaged(library: str, problem: str) -> LibraryError:
    """The error for a library whose database is damaged (raise it)."""
    return LibraryError(
        f"library {library} is damaged ({problem}): restore library.sqlite from a backup, "
        "or delete the library and index the files again"
    )
