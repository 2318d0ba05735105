"""Which items of a library pass a search's filters: SQL for the metadata, Python for path patterns."""

from __future__ import annotations

import os

import numpy as np
from sqlalchemy import Connection, and_, exists, select

from ..filters import Filters, path_matches, path_patterns
from ..modality import Modality
from .schema import STATUS_OK, Item, Tag, Window


def selected_item_ids(conn: Connection, modality: Modality, filters: Filters) -> np.ndarray:
    """Ids (sorted int64) of the embedded items of ``modality`` that pass ``filters``."""
    conditions = [Item.modality == modality.value, Item.status == STATUS_OK]
    if filters.min_size is not None:
        conditions.append(Item.size >= int(filters.min_size))
    if filters.max_size is not None:
        conditions.append(Item.size <= int(filters.max_size))
    if filters.modified_after is not None:
        conditions.append(Item.mtime_ns >= _nanoseconds(filters.modified_after))
    if filters.modified_before is not None:
        conditions.append(Item.mtime_ns <= _nanoseconds(filters.modified_before))
    if filters.min_duration is not None:
        conditions.append(Item.duration >= float(filters.min_duration))
    if filters.max_duration is not None:
        conditions.append(Item.duration <= float(filters.max_duration))
    if filters.min_duration is not None or filters.max_duration is not None:
        conditions.append(Item.duration >= 0)  # not UNKNOWN_DURATION
    for tag in filters.tags:
        conditions.append(exists().where(and_(Tag.item_id == Item.id, Tag.tag == tag)))
    patterns = path_patterns(filters.paths) if filters.paths else None
    query = select(Item.id, Item.path if patterns else Item.id).where(*conditions)
    ids = []
    for item_id, path in conn.execute(query):
        if patterns is not None and not path_matches(path, patterns):
            continue
        if item_id not in filters.exclude_ids:
            ids.append(item_id)
    return np.array(sorted(ids), dtype=np.int64)


def _nanoseconds(seconds: float) -> int:
    """Epoch seconds as the int64 nanoseconds modification times are stored in, clamped to that range
    (which keeps and drops the same items as the time itself would)."""
    limit = (1 << 63) - 1
    return max(-limit - 1, min(limit, int(max(-1e10, min(1e10, seconds)) * 1e9)))


def window_ids_of(conn: Connection, item_ids: np.ndarray) -> np.ndarray:
    """Ids (sorted int64) of the time windows of the given items."""
    wanted = sorted(set(int(i) for i in item_ids))
    if not wanted:
        return np.zeros(0, dtype=np.int64)
    if len(wanted) <= 2000:  # a few items: their windows by the item index
        found = []
        for begin in range(0, len(wanted), 500):
            chunk = wanted[begin : begin + 500]
            found += conn.execute(select(Window.id).where(Window.item_id.in_(chunk))).scalars().all()
        return np.array(sorted(found), dtype=np.int64)
    keep = set(wanted)
    rows = conn.execute(select(Window.id, Window.item_id))
    return np.array(sorted(w for w, item in rows if item in keep), dtype=np.int64)


def under(path: str) -> tuple[bytes, bytes, bytes]:
    """(path, start, stop) as stored bytes: ``path`` itself or anything in [start, stop) lies under it."""
    base = path.rstrip(os.sep)
    # '0' sorts right after '/', so [base + '/', base + '0') is exactly "under path".
    return os.fsencode(path), os.fsencode(base + os.sep), os.fsencode(base + chr(ord(os.sep) + 1))
