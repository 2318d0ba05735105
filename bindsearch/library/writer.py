"""Writing a library: staged item changes committed in batches, the FAISS indexes updated after each commit."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, select, update

from ..modality import Modality
from ..windows import WINDOWED
from .schema import STATUS_FAILED, STATUS_OK, Item, Meta, Tag, Vector, Window
from .soundness import unusable_problem

if TYPE_CHECKING:
    from .store import LibraryStore


class LibraryWriter:
    """Stages item changes and commits them in batches (one SQLite transaction each).

    FAISS changes are applied only after the transaction commits, so the
    in-memory indexes never run ahead of what is durable.
    """

    # During a long run the FAISS files are saved this often, so that queries alongside
    # find a current file instead of rebuilding the index from SQLite.
    SAVE_EVERY_S = 60.0

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
        """Write every staged change in one transaction, then mirror it in the FAISS indexes."""
        if not self._ops:
            return
        lib = self.library
        now = time.time()
        # Load the indexes this batch changes while they still match the saved files.
        for kind, args in self._ops:
            if kind in ("put", "remove"):
                lib.vector_index(args[1])
                if args[1] in WINDOWED:
                    lib.vector_index(args[1], windows=True)
        changes = _FaissChanges()
        with lib._engine.begin() as conn:
            for kind, args in self._ops:
                if kind == "put":
                    self._write_put(conn, args, now, changes)
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
                    conn.execute(delete(Vector).where(Vector.item_id == item_id))
                    conn.execute(delete(Tag).where(Tag.item_id == item_id))
                    conn.execute(delete(Item).where(Item.id == item_id))
                    if status == STATUS_OK:
                        changes.remove((modality, False), [item_id])
            generations = {key: _bump_generation(conn, *key) for key in changes.touched}
        self._ops.clear()
        lib.indexes.generations.update(generations)  # the indexes loaded above, once changed below
        self._dirty.update(changes.touched)
        try:
            for key in changes.touched:
                index = lib.vector_index(*key)
                index.remove(np.array(changes.removes.get(key, []), dtype=np.int64))
                adds = changes.adds.get(key, [])
                if adds:
                    index.add(np.array([i for i, _ in adds]), np.stack([v for _, v in adds]))
        except BaseException:
            # Interrupted (Ctrl-C) after the commit: the in-memory indexes may miss it. Forget
            # them; the next use rebuilds them from SQLite, which has everything.
            for key in changes.touched:
                lib.indexes.forget(key)
            raise
        if time.monotonic() - self._saved_at > self.SAVE_EVERY_S:
            self.save_indexes()

    def _write_put(self, conn: Any, args: tuple[Any, ...], now: float, changes: _FaissChanges) -> None:
        lib = self.library
        path, modality, size, mtime_ns, content_hash, vector, reason, windows, duration, tags = args
        old = conn.execute(
            select(Item.id, Item.status).where(Item.path == path, Item.modality == modality.value)
        ).first()
        status, error = reason if reason else (STATUS_OK, None)
        values = {
            "size": size, "mtime_ns": mtime_ns, "content_hash": content_hash,
            "status": status, "error": error, "indexed_at": now,
            "window_count": None if windows is None else len(windows),
            "duration": duration,
        }
        if old is None:
            item_id = conn.execute(
                Item.__table__.insert().values(path=path, modality=modality.value, **values)
            ).inserted_primary_key[0]
        else:
            item_id = old[0]
            conn.execute(update(Item).where(Item.id == item_id).values(**values))
            conn.execute(delete(Vector).where(Vector.item_id == item_id))
            _delete_windows(conn, item_id, modality, changes)
            if old[1] == STATUS_OK:
                changes.remove((modality, False), [item_id])
        if tags:
            rows = [{"item_id": item_id, "tag": t} for t in tags]
            conn.execute(Tag.__table__.insert().prefix_with("OR IGNORE"), rows)
        if vector is not None:
            conn.execute(Vector.__table__.insert().values(item_id=item_id, data=_blob(vector, lib.dim)))
            changes.add((modality, False), item_id, vector)
        for start, end, window_vector in windows or ():
            window_id = conn.execute(
                Window.__table__.insert().values(
                    item_id=item_id, start=float(start), end=float(end), data=_blob(window_vector, lib.dim)
                )
            ).inserted_primary_key[0]
            changes.add((modality, True), window_id, window_vector)

    def save_indexes(self) -> None:
        """Write every FAISS index changed by this writer, named by its generation."""
        lib = self.library
        for modality, windows in sorted(self._dirty, key=lambda key: (key[0].value, key[1])):
            generation, _ = lib.indexes.generation_and_count(modality, windows)
            lib.indexes.save(modality, windows, lib.vector_index(modality, windows), generation)
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
        import os

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
        lib.vector_index(*whole)  # loaded while it still matches its saved file
        if modality in WINDOWED:
            lib.vector_index(*windowed)
        now = time.time()
        ids = np.zeros(n, dtype=np.int64)
        removed: dict[tuple[Modality, bool], list[int]] = {}
        with lib._engine.begin() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # in the transaction ``begin`` commits
            old: dict[bytes, tuple[int, str]] = {}
            for begin in range(0, n, 500):  # (well under SQLite's limit on bound values)
                chunk = keys[begin : begin + 500]
                marks = ",".join("?" * len(chunk))
                cursor.execute(f"SELECT path, id, status FROM items WHERE modality = ? AND path IN ({marks})",
                               (modality.value, *chunk))
                old.update((path, (item_id, status)) for path, item_id, status in cursor.fetchall())
            replaced = []
            for j, key in enumerate(keys):
                if key in old:
                    ids[j] = old[key][0]
                    replaced.append(j)
                else:  # one statement per new row, for its id (executemany gives none)
                    cursor.execute(
                        "INSERT INTO items (path, modality, size, mtime_ns, content_hash, status, error, "
                        "indexed_at, window_count, duration) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, NULL)",
                        (key, modality.value, int(sizes[j]), int(mtimes_ns[j]), hashes[j], STATUS_OK, now,
                         window_count),
                    )
                    ids[j] = cursor.lastrowid
            if replaced:
                cursor.executemany(
                    "UPDATE items SET size = ?, mtime_ns = ?, content_hash = ?, status = ?, error = NULL, "
                    "indexed_at = ?, window_count = ?, duration = NULL WHERE id = ?",
                    [(int(sizes[j]), int(mtimes_ns[j]), hashes[j], STATUS_OK, now, window_count, int(ids[j]))
                     for j in replaced],
                )
                cursor.executemany("DELETE FROM vectors WHERE item_id = ?", [(int(ids[j]),) for j in replaced])
                removed[whole] = [int(ids[j]) for j in replaced if old[keys[j]][1] == STATUS_OK]
                if modality in WINDOWED:
                    window_ids: list[int] = []
                    for begin in range(0, len(replaced), 500):
                        chunk = [int(ids[j]) for j in replaced[begin : begin + 500]]
                        cursor.execute(f"SELECT id FROM windows WHERE item_id IN ({','.join('?' * len(chunk))})",
                                       chunk)
                        window_ids += [row[0] for row in cursor.fetchall()]
                    cursor.executemany("DELETE FROM windows WHERE item_id = ?", [(int(ids[j]),) for j in replaced])
                    removed[windowed] = window_ids
            cursor.executemany("INSERT INTO vectors (item_id, data) VALUES (?, ?)",
                               [(int(i), row.tobytes()) for i, row in zip(ids, vectors)])
            tag_rows = [(int(i), t) for i, ts in zip(ids, tag_lists) for t in ts]
            if tag_rows:
                cursor.executemany("INSERT OR IGNORE INTO tags (item_id, tag) VALUES (?, ?)", tag_rows)
            cursor.close()
            touched = {whole} | {key for key, gone in removed.items() if gone}
            generations = {key: _bump_generation(conn, *key) for key in touched}
        try:
            lib.indexes.generations.update(generations)
            self._dirty.update(touched)
            for key in touched:
                lib.vector_index(*key).remove(np.array(removed.get(key, []), dtype=np.int64))
            lib.vector_index(*whole).add(ids, vectors)
        except BaseException:
            for key in touched:  # as in commit: the next use rebuilds them from SQLite
                lib.indexes.forget(key)
            raise
        if time.monotonic() - self._saved_at > self.SAVE_EVERY_S:
            self.save_indexes()
        return n - len(replaced), len(replaced)


class _FaissChanges:
    """What one commit adds to and removes from each FAISS index, keyed (modality, windows?)."""

    def __init__(self) -> None:
        self.adds: dict[tuple[Modality, bool], list[tuple[int, np.ndarray]]] = {}
        self.removes: dict[tuple[Modality, bool], list[int]] = {}
        self.touched: set[tuple[Modality, bool]] = set()

    def add(self, key: tuple[Modality, bool], vector_id: int, vector: np.ndarray) -> None:
        self.adds.setdefault(key, []).append((vector_id, vector))
        self.touched.add(key)

    def remove(self, key: tuple[Modality, bool], ids: Sequence[int]) -> None:
        if ids:
            self.removes.setdefault(key, []).extend(ids)
            self.touched.add(key)


def _delete_windows(conn: Any, item_id: int, modality: Modality, changes: _FaissChanges) -> None:
    """Delete an item's windows, noting their ids for the window index."""
    if modality not in WINDOWED:
        return
    ids = list(conn.execute(select(Window.id).where(Window.item_id == item_id)).scalars())
    if ids:
        conn.execute(delete(Window).where(Window.item_id == item_id))
        changes.remove((modality, True), ids)


def _bump_generation(conn: Any, modality: Modality, windows: bool = False) -> int:
    """Count one more change of this index; the new generation."""
    key = _generation_key(modality, windows)
    current = conn.execute(select(Meta.value).where(Meta.key == key)).scalar()
    if current is None:
        conn.execute(Meta.__table__.insert().values(key=key, value="1"))
        return 1
    conn.execute(update(Meta).where(Meta.key == key).values(value=str(int(current) + 1)))
    return int(current) + 1


def _index_name(modality: Modality, windows: bool) -> str:
    """What names a FAISS index: ``audio`` for whole items, ``audio.windows`` for their windows."""
    return f"{modality.value}.windows" if windows else modality.value


def _generation_key(modality: Modality, windows: bool = False) -> str:
    return f"generation:{_index_name(modality, windows)}"


def _blob(vector: np.ndarray, dim: int) -> bytes:
    from ..vectors import to_blob

    return to_blob(vector, dim)
