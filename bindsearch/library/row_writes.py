"""Item, window and tag rows written in batches through the plain cursor of a transaction: one statement per
kind of change and batch (``executemany``), never a round trip per row.

The writer's commits and bulk imports both write through these. Paths are the OS's bytes, as
``schema.FsPath`` stores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .schema import Item, Window

_ITEM_COLUMNS = ("path", "modality", "size", "mtime_ns", "content_hash", "status", "error", "indexed_at",
                 "window_count", "duration", "slot", "crc")
_INSERT_ITEMS = (f"INSERT INTO {Item.__tablename__} ({', '.join(_ITEM_COLUMNS)}) "
                 f"VALUES ({', '.join('?' * len(_ITEM_COLUMNS))})")
_UPDATE_ITEMS = (f"UPDATE {Item.__tablename__} SET "
                 + ", ".join(f"{c} = ?" for c in _ITEM_COLUMNS[2:]) + " WHERE id = ?")
_INSERT_WINDOWS = (f'INSERT INTO {Window.__tablename__} (item_id, start, "end", slot, crc) '
                   'VALUES (?, ?, ?, ?, ?)')
_BATCH = 500  # ids or paths per IN (...): well under SQLite's limit on bound values


def existing_items(cursor: Any, keys: Sequence[tuple[bytes, str]]) -> dict[tuple[bytes, str], tuple[int, str]]:
    """(path, modality) -> (id, status) of those of ``keys`` the library holds."""
    found: dict[tuple[bytes, str], tuple[int, str]] = {}
    wanted = set(keys)
    paths = sorted({path for path, _ in wanted})
    for begin in range(0, len(paths), _BATCH):
        chunk = paths[begin : begin + _BATCH]
        cursor.execute(f"SELECT path, modality, id, status FROM {Item.__tablename__} "
                       f"WHERE path IN ({','.join('?' * len(chunk))})", chunk)
        found.update(((path, modality), (item_id, status)) for path, modality, item_id, status in cursor.fetchall()
                     if (path, modality) in wanted)
    return found


def insert_items(cursor: Any, rows: Sequence[tuple]) -> list[int]:
    """Insert new items, each a tuple of ``_ITEM_COLUMNS`` (path bytes first); their ids, in order.

    SQLite's ``executemany`` reports no ids, so they are read back: every id above the largest before the
    insert is one of these rows, in the order inserted, since the transaction holds the database's write lock
    and ids only grow (AUTOINCREMENT). Elsewhere (PostgreSQL) other writers insert at the same time: each row
    returns its id.
    """
    return _insert(cursor, Item.__tablename__, _INSERT_ITEMS, rows)


def update_items(cursor: Any, rows: Sequence[tuple]) -> None:
    """Give items new values: each row is ``_ITEM_COLUMNS`` less path and modality, then the id."""
    if rows:
        cursor.executemany(_UPDATE_ITEMS, rows)


def insert_windows(cursor: Any, rows: Sequence[tuple[int, float, float, int, int]]) -> list[int]:
    """Insert time windows, (item id, start, end, slot, crc) each; their ids, in order (see ``insert_items``)."""
    return _insert(cursor, Window.__tablename__, _INSERT_WINDOWS, rows)


def delete_windows_of(cursor: Any, item_ids: Sequence[int]) -> list[int]:
    """Delete the time windows of these items; the ids they had."""
    gone: list[int] = []
    for begin in range(0, len(item_ids), _BATCH):
        chunk = [int(i) for i in item_ids[begin : begin + _BATCH]]
        marks = ",".join("?" * len(chunk))
        cursor.execute(f"SELECT id FROM {Window.__tablename__} WHERE item_id IN ({marks})", chunk)
        gone += [row[0] for row in cursor.fetchall()]
        cursor.execute(f"DELETE FROM {Window.__tablename__} WHERE item_id IN ({marks})", chunk)
    return gone


def add_tags(cursor: Any, rows: Sequence[tuple[int, str]]) -> None:
    """Give items tags, (item id, tag) each; a tag an item has already is left as it is."""
    if rows:
        cursor.executemany("INSERT INTO tags (item_id, tag) VALUES (?, ?) ON CONFLICT DO NOTHING", rows)


def _insert(cursor: Any, table: str, statement: str, rows: Sequence[tuple]) -> list[int]:
    if not rows:
        return []
    if not cursor.sqlite:
        return cursor.insert_returning_ids(statement, rows)
    before = cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
    cursor.executemany(statement, rows)
    ids = [row[0] for row in cursor.execute(f"SELECT id FROM {table} WHERE id > ? ORDER BY id", (before,))]
    if len(ids) != len(rows):
        raise RuntimeError(f"inserted {len(rows)} rows into {table}, found {len(ids)} new ids")
    return ids
