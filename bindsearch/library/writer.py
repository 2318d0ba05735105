"""Writing a library: staged item changes committed in batches.

A batch's vectors are appended to the vector files and made durable first, then its rows (pointing at
them) are committed in one SQLite transaction, then the loaded indexes mirror it. A process killed before
the commit leaves rows in the vector files that nothing points at, never a row that points at nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, select, update

from ..errors import UnusableVectorFile
from ..modality import Modality
from ..windows import WINDOWED
from . import outbox
from .database import cursor_of
from .records import generation_key
from .row_writes import add_tags, delete_windows_of, existing_items, insert_items, insert_windows, update_items
from .schema import STATUS_FAILED, STATUS_OK, Item, Tag, Window, bump_counter
from .soundness import unusable_problem, vector_file_unusable
from .vector_files import ROW_DTYPE, row_crcs

if TYPE_CHECKING:
    from .store import LibraryStore


class LibraryWriter:
    """Stages item changes and commits them in batches (one SQLite transaction each).

    Index changes are applied only after the transaction commits, so the
    in-memory indexes never run ahead of what is durable.
    """

    # During a long run the indexes are looked at this often: one that has outgrown exact search, or whose
    # tail has outgrown its build, is built anew, so that queries alongside stay fast.
    MAINTAIN_EVERY_S = 60.0

    def __init__(self, library: LibraryStore) -> None:
        self.library = library
        self._ops: list[tuple[str, tuple[Any, ...]]] = []
        self._dirty: set[tuple[Modality, bool]] = set()  # (modality, windows?) of the indexes changed
        self._saved_at = time.monotonic()

    @property
    def pending(self) -> int:
        return len(self._ops)

    def put(self, path: str, modality: Modality, size: int, mtime_ns: int,
            content_hash: str | None, vector: np.ndarray,
            windows: Sequence[tuple[float, float, np.ndarray]] | None = None, *,
            duration: float | None = None, tags: Sequence[str] = ()) -> None:
        """Insert or replace the item (path, modality) as embedded with ``vector``.

        ``windows`` are its time windows, (start, end, vector) each: [] for a
        file cut into none (too short), None for one not cut at all.
        ``duration`` is an audio or video file's length in seconds; ``tags``
        are added to those the item has (a re-embedded item keeps its tags).
        A vector that is not finite or is all zero is never stored: the item is
        recorded as failed instead (the encoders refuse such output already).
        """
        problem = unusable_problem(vector, windows)
        if problem is not None:
            self.put_failed(path, modality, size, mtime_ns, problem)
            return
        self._ops.append(("put", (path, modality, size, mtime_ns, content_hash, vector, None, windows, duration,
                                  tuple(tags))))

    def put_failed(self, path: str, modality: Modality, size: int, mtime_ns: int, reason: str,
                   status: str = STATUS_FAILED) -> None:
        """Insert or replace the item (path, modality) as failed (or skipped) with ``reason``; drops any vector."""
        self._ops.append(("put", (path, modality, size, mtime_ns, None, None, (status, reason), None, None, ())))

    def touch(self, item_id: int, size: int, mtime_ns: int) -> None:
        """Record a new size/mtime for an item whose content did not change."""
        self._ops.append(("touch", (item_id, size, mtime_ns)))

    def set_duration(self, item_id: int, duration: float | None) -> None:
        """Record the length of an audio or video item whose content did not change."""
        self._ops.append(("duration", (item_id, duration)))

    def move(self, item_id: int, new_path: str, size: int, mtime_ns: int) -> None:
        """Give an item a new path (a moved or renamed file): its id and vector stay."""
        self._ops.append(("move", (item_id, new_path, size, mtime_ns)))

    def remove(self, item_id: int, modality: Modality, *, tags_to: int | None = None) -> None:
        """Delete an item and its vector; its tags go too, or to the item ``tags_to`` (one that takes its place)."""
        self._ops.append(("remove", (item_id, modality, tags_to)))

    def commit(self) -> None:
        """Write every staged change: the vectors to their files, then the rows in one transaction, then
        the loaded indexes."""
        if not self._ops:
            return
        lib = self.library
        now = time.time()
        placed = self._append_vectors()
        runs = _put_runs(self._ops)
        changes = _IndexChanges()
        with lib._engine.begin() as conn:
            cursor = cursor_of(conn)  # in the transaction ``begin`` commits
            for n, (kind, args) in enumerate(self._ops):
                if kind == "put":
                    if n in runs:
                        _write_puts(cursor, n, self._ops[n : runs[n]], now, changes, placed)
                elif kind == "touch":
                    item_id, size, mtime_ns = args
                    conn.execute(update(Item).where(Item.id == item_id).values(size=size, mtime_ns=mtime_ns))
                elif kind == "duration":
                    item_id, duration = args
                    conn.execute(update(Item).where(Item.id == item_id).values(duration=duration))
                elif kind == "move":
                    item_id, new_path, size, mtime_ns = args
                    conn.execute(
                        update(Item).where(Item.id == item_id).values(path=new_path, size=size, mtime_ns=mtime_ns)
                    )
                elif kind == "remove":
                    item_id, modality, tags_to = args
                    status = conn.execute(select(Item.status).where(Item.id == item_id)).scalar()
                    _delete_windows(conn, item_id, modality, changes)
                    if tags_to is not None:
                        from .tags import copy_tags

                        copy_tags(conn, item_id, tags_to)
                    conn.execute(delete(Tag).where(Tag.item_id == item_id))
                    conn.execute(delete(Item).where(Item.id == item_id))
                    if status == STATUS_OK:
                        changes.remove((modality, False), [item_id])
            shared = getattr(lib.vectors, "shared", False)
            if shared:
                changes.slots_are_ids()
                for key in changes.touched:
                    removed, ids, vectors, _, _ = changes.of(key, lib.dim)
                    set_slots_to_ids(cursor, key[1], ids)
                    outbox.stage(conn, key, removed, ids, vectors)
            cursor.close()
            generations = {key: _bump_generation(conn, *key) for key in changes.touched}
        self._ops.clear()
        self._dirty.update(changes.touched)
        if shared:
            lib.vectors.flush()
        for key in changes.touched:
            lib.indexes.apply(key, generations[key], *changes.of(key, lib.dim))
        if time.monotonic() - self._saved_at > self.MAINTAIN_EVERY_S:
            self.maintain_indexes(final=False)

    def _append_vectors(self) -> dict[tuple[int, int | None], tuple[int, int]]:
        """Append the staged vectors to their files, one durable append per file: (op, window or None) ->
        (slot, CRC-32)."""
        rows: dict[tuple[Modality, bool], list[tuple[tuple[int, int | None], np.ndarray]]] = {}
        for n, (kind, args) in enumerate(self._ops):
            if kind == "put" and args[5] is not None:
                modality = args[1]
                rows.setdefault((modality, False), []).append(((n, None), args[5]))
                for w, (_, _, window_vector) in enumerate(args[7] or ()):
                    rows.setdefault((modality, True), []).append(((n, w), window_vector))
        placed: dict[tuple[int, int | None], tuple[int, int]] = {}
        for key, staged in rows.items():
            vectors = np.stack([np.asarray(v, dtype="<f4").reshape(-1) for _, v in staged])
            slots, crcs = self._append(key, vectors)
            placed.update((tag, (int(slot), int(crc))) for (tag, _), slot, crc in zip(staged, slots, crcs))
        return placed

    def _append(self, key: tuple[Modality, bool], vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append to an index's vector file; one that cannot be used any more is replaced first (what it
        held is lost anyway: its items are marked failed, see ``soundness.vector_file_unusable``). A vector
        store elsewhere (Milvus) is written after the commit, by id: no slot yet (-1), the CRC-32s now."""
        if getattr(self.library.vectors, "shared", False):
            rows = np.ascontiguousarray(vectors, dtype=ROW_DTYPE)
            return np.full(rows.shape[0], -1, np.int64), row_crcs(rows).astype(np.int64)
        try:
            return self.library.vectors.append(key, vectors)
        except UnusableVectorFile as exc:
            vector_file_unusable(self.library, key, str(exc))
            return self.library.vectors.append(key, vectors)

    def maintain_indexes(self, final: bool = True) -> None:
        """Build anew the indexes changed by this writer that are due it (see ``IndexBuilder.maintain``)."""
        if not self._dirty:  # (a run that changed nothing loads no index, nor FAISS)
            self._saved_at = time.monotonic()
            return
        builder = self.library.indexes.builder
        for key in sorted(self._dirty, key=lambda key: (key[0].value, key[1])):
            builder.maintain(key, final)
        if final:
            self._dirty.clear()
        self._saved_at = time.monotonic()

    def put_many(self, modality: Modality, paths: Sequence[str], vectors: np.ndarray, sizes: Sequence[int],
                 mtimes_ns: Sequence[int], *, content_hashes: Sequence[str | None] | None = None,
                 tags: Sequence[Sequence[str]] | None = None, window_count: int | None = None) -> tuple[int, int]:
        """Insert or replace many embedded items of one modality in one transaction of their own; (added, replaced).

        For bulk imports, where ``put`` and ``commit`` would cost several SQLAlchemy statements per row:
        here rows go through the SQLite cursor, each kind of change batched. Changes staged before are
        committed first. ``vectors`` is (n, dim), one unit row per path, each finite and not zero; the
        paths must be distinct (ValueError before anything is written). A replaced item keeps its id and
        its tags, and loses its old vector and time windows; ``tags`` are added. Every item gets
        ``window_count`` (None: not cut into windows) and no duration.
        """
        lib = self.library
        n = len(paths)
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        hashes = list(content_hashes) if content_hashes is not None else [None] * n
        tag_lists = list(tags) if tags is not None else [()] * n
        if vectors.shape != (n, lib.dim) or len(sizes) != n or len(mtimes_ns) != n or len(hashes) != n \
                or len(tag_lists) != n:
            raise ValueError(f"put_many: {n} paths, vectors {vectors.shape} (dim {lib.dim}), {len(sizes)} sizes, "
                             f"{len(mtimes_ns)} mtimes, {len(hashes)} hashes, {len(tag_lists)} tag lists")
        squares = np.einsum("ij,ij->i", vectors, vectors)  # NaN or inf in a row makes its sum so too
        if n and not (np.isfinite(squares) & (squares > 1e-24)).all():
            raise ValueError("put_many: a vector is not finite or is all zero")
        keys = [os.fsencode(p) for p in paths]  # as schema.FsPath stores them
        if len(set(keys)) != n:
            raise ValueError("put_many: a path comes twice")
        self.commit()
        if n == 0:
            return 0, 0
        whole, windowed = (modality, False), (modality, True)
        slots, crcs = self._append(whole, vectors)  # durable before any row points at them
        now = time.time()
        ids = np.zeros(n, dtype=np.int64)
        removed: dict[tuple[Modality, bool], list[int]] = {}
        with lib._engine.begin() as conn:
            cursor = cursor_of(conn)  # in the transaction ``begin`` commits
            old = existing_items(cursor, [(key, modality.value) for key in keys])
            replaced = [j for j, key in enumerate(keys) if (key, modality.value) in old]
            fresh = [j for j, key in enumerate(keys) if (key, modality.value) not in old]
            for j in replaced:
                ids[j] = old[keys[j], modality.value][0]

            def values(j: int) -> tuple:
                return (int(sizes[j]), int(mtimes_ns[j]), hashes[j], STATUS_OK, None, now, window_count, None,
                        int(slots[j]), int(crcs[j]))

            ids[fresh] = insert_items(cursor, [(keys[j], modality.value, *values(j)) for j in fresh])
            update_items(cursor, [(*values(j), int(ids[j])) for j in replaced])
            if replaced:
                removed[whole] = [int(ids[j]) for j in replaced if old[keys[j], modality.value][1] == STATUS_OK]
                if modality in WINDOWED:
                    removed[windowed] = delete_windows_of(cursor, [int(ids[j]) for j in replaced])
            add_tags(cursor, [(int(i), t) for i, ts in zip(ids, tag_lists) for t in ts])
            shared = getattr(lib.vectors, "shared", False)
            if shared:
                slots = ids.copy()
                set_slots_to_ids(cursor, False, ids)
                outbox.stage(conn, whole, np.array(removed.get(whole, []), dtype=np.int64), ids, vectors)
                if removed.get(windowed):
                    outbox.stage(conn, windowed, np.array(removed[windowed], dtype=np.int64), slots[:0],
                                 vectors[:0])
            cursor.close()
            touched = {whole} | {key for key, gone in removed.items() if gone}
            generations = {key: _bump_generation(conn, *key) for key in touched}
        if shared:
            lib.vectors.flush()
        self._dirty.update(touched)
        nothing = np.zeros(0, np.int64)
        for key in touched:
            gone = np.array(removed.get(key, []), dtype=np.int64)
            if key == whole:
                lib.indexes.apply(key, generations[key], gone, ids, vectors, slots, crcs)
            else:
                lib.indexes.apply(key, generations[key], gone, nothing, np.zeros((0, lib.dim), np.float32),
                                  nothing, nothing)
        if time.monotonic() - self._saved_at > self.MAINTAIN_EVERY_S:
            self.maintain_indexes(final=False)
        return n - len(replaced), len(replaced)


class _IndexChanges:
    """What one commit adds to and removes from each index, keyed (modality, windows?)."""

    def __init__(self) -> None:
        self.adds: dict[tuple[Modality, bool], list[tuple[int, np.ndarray, int, int]]] = {}
        self.removes: dict[tuple[Modality, bool], list[int]] = {}
        self.touched: set[tuple[Modality, bool]] = set()

    def add(self, key: tuple[Modality, bool], vector_id: int, vector: np.ndarray, slot: int, crc: int) -> None:
        self.adds.setdefault(key, []).append((vector_id, vector, slot, crc))
        self.touched.add(key)

    def remove(self, key: tuple[Modality, bool], ids: Sequence[int]) -> None:
        if ids:
            self.removes.setdefault(key, []).extend(ids)
            self.touched.add(key)
            if self.adds.get(key):  # added earlier in this commit, removed since: not added at all
                gone = set(ids)
                self.adds[key] = [a for a in self.adds[key] if a[0] not in gone]

    def slots_are_ids(self) -> None:
        """Every vector's slot is its id (a vector store that keeps vectors by id)."""
        for key, adds in self.adds.items():
            self.adds[key] = [(vector_id, vector, vector_id, crc) for vector_id, vector, _, crc in adds]

    def of(self, key: tuple[Modality, bool], dim: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ids removed, ids added, their vectors, slots and CRC-32s) of one index. An id removed and then
        added again in the same commit (a file embedded anew) is both: removal goes first; one added and
        removed since is only removed."""
        adds = self.adds.get(key, [])
        removed = np.array(self.removes.get(key, []), dtype=np.int64)
        if not adds:
            empty = np.zeros(0, np.int64)
            return removed, empty, np.zeros((0, dim), np.float32), empty, empty
        last = {vector_id: n for n, (vector_id, *_) in enumerate(adds)}  # the same id twice: its last vector
        kept = [adds[n] for n in sorted(last.values())]
        return (removed, np.array([a[0] for a in kept], dtype=np.int64),
                np.stack([np.asarray(a[1], dtype=np.float32).reshape(-1) for a in kept]),
                np.array([a[2] for a in kept], dtype=np.int64), np.array([a[3] for a in kept], dtype=np.int64))


def set_slots_to_ids(cursor: Any, windows: bool, ids: np.ndarray) -> None:
    """Point the rows of ``ids`` (items, or windows) at themselves: their vector is kept under their id."""
    if ids.size:
        table = Window.__tablename__ if windows else Item.__tablename__
        cursor.executemany(f"UPDATE {table} SET slot = ? WHERE id = ?", [(int(i), int(i)) for i in ids.tolist()])


def _put_runs(ops: Sequence[tuple[str, tuple[Any, ...]]]) -> dict[int, int]:
    """Where each run of consecutive puts starts -> where it ends: runs cut where a (path, modality) would come
    twice, so that within a run every put is of its own item and they can be written together."""
    runs: dict[int, int] = {}
    n = 0
    while n < len(ops):
        if ops[n][0] != "put":
            n += 1
            continue
        start, seen = n, set()
        while n < len(ops) and ops[n][0] == "put" and (ops[n][1][0], ops[n][1][1]) not in seen:
            seen.add((ops[n][1][0], ops[n][1][1]))
            n += 1
        runs[start] = n
    return runs


def _write_puts(cursor: Any, first: int, run: Sequence[tuple[str, tuple[Any, ...]]], now: float,
                changes: _IndexChanges, placed: dict[tuple[int, int | None], tuple[int, int]]) -> None:
    """Insert or replace the items of a run of puts (each of its own item), op ``first`` on: a statement per kind
    of change. A replaced item keeps its id and tags and loses its old vector and windows."""
    puts = [args for _, args in run]
    keys = [(os.fsencode(path), modality.value) for path, modality, *_ in puts]
    old = existing_items(cursor, keys)
    ids: list[int] = [0] * len(puts)
    new_rows: list[tuple] = []
    update_rows: list[tuple] = []
    for j, (_, _, size, mtime_ns, content_hash, vector, reason, windows, duration, _) in enumerate(puts):
        status, error = reason if reason else (STATUS_OK, None)
        slot, crc = placed[(first + j, None)] if vector is not None else (None, None)
        values = (size, mtime_ns, content_hash, status, error, now, None if windows is None else len(windows),
                  duration, slot, crc)
        if keys[j] in old:
            ids[j] = old[keys[j]][0]
            update_rows.append((*values, ids[j]))
        else:
            new_rows.append((*keys[j], *values))
    fresh = [j for j in range(len(puts)) if keys[j] not in old]
    for j, item_id in zip(fresh, insert_items(cursor, new_rows)):
        ids[j] = item_id
    update_items(cursor, update_rows)
    replaced: dict[Modality, list[int]] = {}  # windowed modality -> ids of its replaced items
    for j in (j for j in range(len(puts)) if keys[j] in old):
        modality = puts[j][1]
        if old[keys[j]][1] == STATUS_OK:
            changes.remove((modality, False), [ids[j]])
        if modality in WINDOWED:
            replaced.setdefault(modality, []).append(ids[j])
    for modality, item_ids in replaced.items():
        changes.remove((modality, True), delete_windows_of(cursor, item_ids))
    add_tags(cursor, [(ids[j], tag) for j, args in enumerate(puts) for tag in args[9]])
    window_rows, window_vectors = [], []
    for j, args in enumerate(puts):
        modality, vector, windows = args[1], args[5], args[7]
        if vector is not None:
            changes.add((modality, False), ids[j], vector, *placed[(first + j, None)])
        for w, (start, end, window_vector) in enumerate(windows or ()):
            slot, crc = placed[(first + j, w)]
            window_rows.append((ids[j], float(start), float(end), slot, crc))
            window_vectors.append((modality, window_vector, slot, crc))
    for window_id, (modality, window_vector, slot, crc) in zip(insert_windows(cursor, window_rows), window_vectors):
        changes.add((modality, True), window_id, window_vector, slot, crc)


def _delete_windows(conn: Any, item_id: int, modality: Modality, changes: _IndexChanges) -> None:
    """Delete an item's windows, noting their ids for the window index."""
    if modality not in WINDOWED:
        return
    ids = list(conn.execute(select(Window.id).where(Window.item_id == item_id)).scalars())
    if ids:
        conn.execute(delete(Window).where(Window.item_id == item_id))
        changes.remove((modality, True), ids)


def _bump_generation(conn: Any, modality: Modality, windows: bool = False) -> int:
    """Count one more change of this index; the new generation."""
    return bump_counter(conn, generation_key(modality, windows))
