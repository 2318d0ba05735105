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
from .schema import STATUS_FAILED, STATUS_OK, Item, Meta, Vector, Window

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


# Set in the meta table once every stored vector has been checked, so that later opens need not read them.
CHECKED_KEY = "vectors_checked"
_CHUNK = 4096

_ITEM_VECTORS_SQL = (
    "SELECT items.id, items.modality, vectors.data FROM vectors JOIN items ON items.id = vectors.item_id "
    "WHERE items.status = ?"
)
_WINDOW_VECTORS_SQL = (
    "SELECT items.id, items.modality, windows.data FROM windows JOIN items ON items.id = windows.item_id"
)


def find_unusable(raw: Any, dim: int) -> dict[int, str]:
    """Items whose stored vector, or one of whose windows' vectors, is unusable: item id -> modality value.

    ``raw`` is a DB-API connection; rows are read a chunk at a time, so a big library never sits in memory.
    """
    bad: dict[int, str] = {}
    cursor = raw.cursor()
    try:
        for sql, args in ((_ITEM_VECTORS_SQL, (STATUS_OK,)), (_WINDOW_VECTORS_SQL, ())):
            cursor.execute(sql, args)
            while rows := cursor.fetchmany(_CHUNK):
                bad.update((item_id, modality) for item_id, modality in _unusable_in(rows, dim))
    finally:
        cursor.close()
    return bad


def _unusable_in(rows: Sequence[tuple[int, str, bytes]], dim: int) -> list[tuple[int, str]]:
    sized = [len(r[2]) == 4 * dim for r in rows]
    wrong = [(r[0], r[1]) for r, ok in zip(rows, sized) if not ok]  # a blob of another length cannot be searched
    good_rows = [r for r, ok in zip(rows, sized) if ok]
    if not good_rows:
        return wrong
    vectors = np.frombuffer(b"".join(r[2] for r in good_rows), dtype="<f4").reshape(len(good_rows), dim)
    usable = usable_rows(vectors)
    return wrong + [(r[0], r[1]) for r, ok in zip(good_rows, usable) if not ok]


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
        raw = library._engine.raw_connection()
        try:
            bad = find_unusable(raw, library.dim)
        finally:
            raw.close()
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


def _mark_failed(conn: Any, bad: dict[int, str], bump_generation: Callable[[Any, Modality, bool], None]) -> None:
    ids = list(bad)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        conn.execute(delete(Window).where(Window.item_id.in_(chunk)))
        conn.execute(delete(Vector).where(Vector.item_id.in_(chunk)))
        conn.execute(update(Item).where(Item.id.in_(chunk)).values(
            status=STATUS_FAILED, error=UNUSABLE_STORED, content_hash=None, window_count=None,
            mtime_ns=-1))  # no file has this mtime: the next index run reads it again, as changed
    for modality in {Modality(m) for m in bad.values()}:
        bump_generation(conn, modality, False)
        if modality in WINDOWED:
            bump_generation(conn, modality, True)
    if conn.execute(select(Meta.value).where(Meta.key == CHECKED_KEY)).first() is None:
        conn.execute(Meta.__table__.insert().values(key=CHECKED_KEY, value="1"))
    else:
        conn.execute(update(Meta).where(Meta.key == CHECKED_KEY).values(value="1"))


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


# How many of a loaded index's vectors are compared with SQLite: enough to catch ids shuffled or taken
# from another library, few enough to cost nothing beside loading the file.
INDEX_SAMPLE = 32


def index_disagreement(conn: Any, index: Any, modality: Modality, windows: bool) -> str | None:
    """Why a loaded VectorIndex does not hold what SQLite holds, from a sample of its (id, vector) pairs;
    None when the sample agrees."""
    import faiss

    from ..vectors import evenly_spaced

    if index.size == 0:
        return None
    positions = evenly_spaced(index.size, INDEX_SAMPLE)
    ids = faiss.vector_to_array(index.index.id_map)[positions].astype(np.int64)
    wanted = [int(i) for i in ids]
    if windows:
        query = (select(Window.id, Window.data).join(Item, Window.item_id == Item.id)
                 .where(Window.id.in_(wanted), Item.modality == modality.value))
    else:
        query = (select(Vector.item_id, Vector.data).join(Item, Vector.item_id == Item.id)
                 .where(Vector.item_id.in_(wanted), Item.modality == modality.value, Item.status == STATUS_OK))
    stored = {int(i): data for i, data in conn.execute(query)}
    flat = index.index.index  # the vectors in insertion order, beside the id map
    for position, vector_id in zip(positions, wanted):
        data = stored.get(vector_id)
        if data is None:
            return f"it holds id {vector_id}, which the library does not"
        if np.asarray(flat.reconstruct(int(position)), dtype="<f4").tobytes() != data:
            return f"its vector of id {vector_id} is not the library's"
    return None
