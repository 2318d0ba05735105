"""Bringing a library written by an older bindsearch up to the current schema."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

from ..errors import LibraryError
from .schema import SCHEMA_VERSION


def _add_windows(conn: Connection) -> None:
    """1 -> 2: time windows of long audio and video.

    Existing audio and video items get ``window_count`` NULL, so the next run
    over their folders cuts the long ones into windows.
    """
    from .schema import Window

    conn.execute(text("ALTER TABLE items ADD COLUMN window_count INTEGER"))
    Window.__table__.create(conn)


def _add_tags_and_durations(conn: Connection) -> None:
    """2 -> 3: tags on items, and the duration of audio and video items.

    Durations of existing items are NULL; the next run over their folders reads
    them from the files' headers (no decoding, no embedding).
    """
    from .schema import Tag

    conn.execute(text("ALTER TABLE items ADD COLUMN duration REAL"))
    Tag.__table__.create(conn)


# MIGRATIONS[n] upgrades a library from schema n to n + 1, inside one transaction.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _add_windows, 2: _add_tags_and_durations}


def migrate(conn: Connection, found: int, where: str) -> int:
    """Run the migrations from ``found`` to SCHEMA_VERSION; returns the new version."""
    if found > SCHEMA_VERSION:
        raise LibraryError(
            f"library {where} has schema {found}, newer than this bindsearch understands ({SCHEMA_VERSION}): "
            "upgrade bindsearch"
        )
    version = found
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise LibraryError(f"library {where} has schema {version}, which cannot be migrated")
        step(conn)
        version += 1
    return version
