"""Keeping a library's vectors usable: what may be stored, and finding what should not have been."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DatabaseError, OperationalError

from ..errors import LibraryLockedError
from ..modality import Modality
from ..vectors import is_usable, usable_rows
from ..windows import WINDOWED
from .disk_space import disk_is_full
from .lock import WriterLock
from .records import index_keys
from .schema import STATUS_FAILED, Item, Window, set_meta
from .slot_map import SlotMap

log = logging.getLogger("bindsearch")

# The reason a stored item gets when its vector (or one of its windows') is found unusable.
UNUSABLE_STORED = ("its stored embedding was unusable (NaN, infinite or all zero): "
                   "the next index run reads the file again")


def unusable_problem(vector: np.ndarray, windows: Sequence[tuple[float, float, np.ndarray]] | None) -> str | None:
    """Why an item's vector or window vectors cannot be stored, or None when they can."""
    if not is_usable(vector):
        return "the model gave no usable embedding (not finite, or all zero)"
    if windows and not all(is_usable(w[2]) for w in windows):
        return "the model gave no usable embedding for some of the file's time windows"
    return None


# The reason a stored item gets when its vector's row (or one of its windows') is damaged on disk.
DAMAGED_STORED = ("its stored embedding was damaged on disk (its checksum does not match): "
                  "the next index run reads the file again")

# Set in the meta table once every stored vector has been checked, so that later opens need not read them.
CHECKED_KEY = "vectors_checked"
_CHUNK = 4096


def find_unusable(library: Any) -> dict[int, str]:
    """Items whose stored vector, or one of whose windows' vectors, is unusable: item id -> modality value.

    Vectors are read a chunk at a time from the vector files, so a big library never sits in memory; a row
    the vector file does not hold counts as unusable.
    """
    bad: dict[int, str] = {}
    for key in index_keys(library.held_modalities()):
        modality, windows = key
        found = _unusable_ids(library, key, library.slot_map(*key))
        if found.size:  # looked at again with the slots as they are now (see ``still_damaged``)
            library.vectors.forget(key)
            now = library.slot_map(*key)
            present = found[now.crcs_of(found) != -1] if now.size else found[:0]
            at = now.slots_of(present) if present.size else present
            found = _unusable_ids(library, key, SlotMap(present, at, now.crcs_of(present)))
        owners = _owners(library, found) if windows else found
        bad.update((int(i), modality.value) for i in owners)
    return bad


def _unusable_ids(library: Any, key: tuple[Modality, bool], slots: SlotMap) -> np.ndarray:
    """The ids of ``slots`` whose rows are not usable vectors (or that the file does not hold)."""
    from ..errors import VectorFileError

    found: list[np.ndarray] = []
    try:
        chunks = library.vectors.chunks(key, slots.slots, _CHUNK)
        for begin, vectors in zip(range(0, slots.size, _CHUNK), chunks):
            found.append(slots.ids[begin : begin + _CHUNK][~usable_rows(vectors)])
    except VectorFileError:
        return slots.ids
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _owners(library: Any, window_ids: np.ndarray) -> np.ndarray:
    """The item id of each window id (aligned)."""
    owner: dict[int, int] = {}
    ids = [int(i) for i in window_ids]
    with library._engine.connect() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            owner.update(conn.execute(select(Window.id, Window.item_id).where(Window.id.in_(chunk))).all())
    return np.array([owner[i] for i in ids], dtype=np.int64)


def check_stored_vectors(library: Any, bump_generation: Callable[[Any, Modality, bool], None]) -> None:
    """Once per library (when its meta table does not say it was done): find the items whose stored vectors
    are unusable, stored before they were refused, and mark them failed with a notice.

    Their vectors and windows are deleted and the generations of the indexes that held them move on, so
    those indexes are rebuilt from what is left. A library that cannot be written to (read-only, or being
    written by another process) stays as it is: the items are left out of this process's indexes only.
    """
    lock: WriterLock | None = None
    why = "the library cannot be written to now"
    if not getattr(library, "read_only", None):
        lock = WriterLock(os.path.join(library.path, "write.lock"), str(library.path))
        try:
            lock.acquire()  # before the scan, so that no writer changes an item between the scan and the repair
        except (LibraryLockedError, OSError):
            lock = None
    try:
        bad = find_unusable(library)
        repaired = False
        if lock is not None:
            try:
                with library._engine.begin() as conn:
                    _mark_failed(conn, bad, bump_generation)
                library._meta[CHECKED_KEY] = "1"
                repaired = True
            except (OperationalError, DatabaseError) as exc:  # a database that cannot be written to
                why = "its disk is full" if disk_is_full(exc, library.path) else "the library cannot be written to now"
    finally:
        if lock is not None:
            lock.release()
    if not bad:
        return
    if repaired:
        log.warning("library %s held %s whose stored embeddings were not finite (%s): marked failed and left "
                    "out of searches; index the files again once they are fixed",
                    library.path, _items(len(bad)), _example(library, bad))
    else:
        _drop_in_memory(library, bad)
        log.warning("library %s holds %s whose stored embeddings are not finite (%s): left out of searches; "
                    "%s, so it stays as it is",
                    library.path, _items(len(bad)), _example(library, bad), why)


def _mark_failed(conn: Any, bad: dict[int, str], bump_generation: Callable[[Any, Modality, bool], None],
                 reason: str = UNUSABLE_STORED) -> None:
    ids = list(bad)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        conn.execute(delete(Window).where(Window.item_id.in_(chunk)))
        conn.execute(update(Item).where(Item.id.in_(chunk)).values(
            status=STATUS_FAILED, error=reason, content_hash=None, window_count=None, slot=None, crc=None,
            mtime_ns=-1))  # no file has this mtime: the next index run reads it again, as changed
    for modality in {Modality(m) for m in bad.values()}:
        bump_generation(conn, modality, False)
        if modality in WINDOWED:
            bump_generation(conn, modality, True)
    set_meta(conn, CHECKED_KEY, "1")


def _drop_in_memory(library: Any, bad: dict[int, str]) -> None:
    """Leave the items (and their windows) out of the indexes this process loads."""
    ids = list(bad)
    with library._engine.connect() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for window_id, item_id in conn.execute(select(Window.id, Window.item_id).where(Window.item_id.in_(chunk))):
                library.indexes.dropped.setdefault((Modality(bad[item_id]), True), set()).add(int(window_id))
    for item_id, modality in bad.items():
        library.indexes.dropped.setdefault((Modality(modality), False), set()).add(int(item_id))


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def _example(library: Any, bad: dict[int, str]) -> str:
    first = min(bad)
    with library._engine.connect() as conn:
        path = conn.execute(select(Item.path).where(Item.id == first)).scalar()
    more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
    return f"{path}{more}"


def vectors_damaged(library: Any, key: tuple[Modality, bool], ids: np.ndarray) -> None:
    """Vectors of one index (item or window ids) found damaged on disk: their items are marked failed, to be
    embedded again by the next index run, and left out of this process's indexes meanwhile."""
    modality, windows = key
    ids = still_damaged(library, key, ids)
    if not ids.size:
        return
    item_ids = _owners(library, ids) if windows else np.asarray(ids, dtype=np.int64)
    bad = {int(i): modality.value for i in item_ids}
    _drop_in_memory(library, bad)
    if windows:
        for window_id in ids:
            library.indexes.dropped.setdefault(key, set()).add(int(window_id))
    marked = False
    if not getattr(library, "read_only", None):
        lock = WriterLock(os.path.join(library.path, "write.lock"), str(library.path))
        try:
            with lock, library._engine.begin() as conn:
                _mark_failed(conn, bad, _bump, DAMAGED_STORED)
            marked = True
        except (LibraryLockedError, OSError, OperationalError, DatabaseError):
            pass
    log.warning("library %s: %s of %s had stored embeddings damaged on disk (%s): %s",
                library.path, _items(len(bad)), modality.value, _example(library, bad),
                "marked failed, to be read again by the next index run" if marked
                else "left out of searches until the library can be repaired")


def still_damaged(library: Any, key: tuple[Modality, bool], ids: np.ndarray) -> np.ndarray:
    """Those of ``ids`` whose rows are damaged as SQLite and the vector file stand now, checked afresh.

    A process reads the slots once and the rows later: if meanwhile an item was embedded anew or removed and
    ``optimize`` freed its old row, that row reads as zeros without being damaged. Such an id has another slot
    now, or none, and its row is not marked damaged for what a stale slot showed.
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if not ids.size:
        return ids
    library.vectors.forget(key)  # (read through a handle opened now: the file may have been replaced)
    now = library.slot_map(*key)
    present = ids[now.crcs_of(ids) != -1] if now.size else ids[:0]
    if not present.size:
        return present
    bad = library.vectors.damaged(key, now.slots_of(present), now.crcs_of(present))
    return present[bad]


def vector_file_unusable(library: Any, key: tuple[Modality, bool], problem: str) -> None:
    """A vector file the writer cannot append to (not a regular file, not one of this library's): every item
    with a row in it is marked failed, to be embedded again by the next index run, and the file is set aside
    as ``<name>.f32.damaged`` so that a new one starts. Only under the writer lock."""
    modality, windows = key
    if windows:
        owners = (select(Window.item_id).join(Item, Item.id == Window.item_id)
                  .where(Item.modality == modality.value, Window.slot.is_not(None)).distinct())
    else:
        owners = select(Item.id).where(Item.modality == modality.value, Item.slot.is_not(None))
    with library._engine.begin() as conn:
        bad = {int(i): modality.value for i in conn.execute(owners).scalars()}
        if bad:
            _mark_failed(conn, bad, _bump, DAMAGED_STORED)
    aside = library.vectors.set_aside(key)
    for other in ((modality, False), (modality, True)):
        library.indexes.forget(other)
    lost = f"; {_items(len(bad))} with vectors in it marked failed, to be read again by the next index run" \
        if bad else ""
    log.warning("library %s: %s%s; the file is kept as %s", library.path, problem, lost, aside)


def _bump(conn: Any, modality: Modality, windows: bool) -> None:
    from .records import generation_key
    from .schema import bump_counter

    bump_counter(conn, generation_key(modality, windows))
