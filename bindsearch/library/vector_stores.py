"""The vector files of one library: ``vectors/<index>.f32``, one per index (``image``, ``audio.windows``).

Every process reads them through handles opened on first use; the writer appends through handles of its
own, opened (and locked) under the library's writer lock. A file that was never written holds no rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import VectorFileError
from ..modality import Modality
from .records import VECTOR_DIR, index_name
from .vector_store import VectorStore

Key = tuple[Modality, bool]  # (modality, windows?)


class VectorStores:
    """The vector files of the library at ``folder``, of ``dim`` float32 values a row."""

    def __init__(self, folder: Path, dim: int) -> None:
        self.folder = Path(folder)
        self.dim = dim
        self._readers: dict[Key, VectorStore] = {}
        self._writers: dict[Key, VectorStore] = {}

    def path(self, key: Key) -> Path:
        return self.folder / VECTOR_DIR / f"{index_name(*key)}.f32"

    def exists(self, key: Key) -> bool:
        return os.path.lexists(self.path(key))

    def _reader(self, key: Key) -> VectorStore:
        store = self._writers.get(key) or self._readers.get(key)
        if store is None:
            store = self._readers[key] = VectorStore(self.path(key), self.dim)
        return store

    def rows(self, key: Key) -> int:
        """How many whole rows this index's file holds now; 0 for a file that is missing or unusable (each row
        it should hold then counts as damaged)."""
        try:
            return self._reader(key).rows
        except VectorFileError:
            return 0

    def read(self, key: Key, slots: np.ndarray) -> np.ndarray:
        """The rows at ``slots`` (n, dim); VectorFileError if the file is missing, damaged or too short."""
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        if not slots.size:
            return np.zeros((0, self.dim), np.float32)
        return self._reader(key).read(slots)

    def chunks(self, key: Key, slots: np.ndarray, size: int | None = None) -> Iterator[np.ndarray]:
        """The rows at ``slots`` in that order, a chunk at a time (see ``VectorStore.chunks``)."""
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        if not slots.size:
            return iter(())
        return self._reader(key).chunks(slots, size)

    def damaged(self, key: Key, slots: np.ndarray, crcs: np.ndarray) -> np.ndarray:
        """Positions (into ``slots``) of the rows whose bytes do not have the CRC-32 recorded, or that the file
        does not hold (all of them when it is missing or unusable)."""
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        if not slots.size:
            return np.zeros(0, np.int64)
        try:
            bad = self._reader(key).verify(slots, np.asarray(crcs, dtype=np.int64).astype(np.uint32))
        except VectorFileError:
            return np.arange(slots.size)
        return np.flatnonzero(np.isin(slots, bad))

    def append(self, key: Key, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append (n, dim) rows and make them durable: their (slots, CRC-32s), both int64. Only under the
        library's writer lock."""
        store = self._writers.get(key)
        if store is None:
            os.makedirs(self.folder / VECTOR_DIR, exist_ok=True)
            store = self._writers[key] = VectorStore(self.path(key), self.dim, writable=True)
            stale = self._readers.pop(key, None)
            if stale is not None:
                stale.close()
        slots, crcs = store.append(vectors)
        return slots, crcs.astype(np.int64)

    def free_unused(self, key: Key, live_slots: np.ndarray) -> int:
        """Give back the disk space of the rows of this index's file that are not at ``live_slots``: the bytes
        freed. Only under the library's writer lock, with every live slot given (see ``holes``)."""
        if not self.exists(key):
            return 0
        store = self._writers.get(key)
        if store is None:
            store = self._writers[key] = VectorStore(self.path(key), self.dim, writable=True)
        return store.free_unused(live_slots)

    def allocated_bytes(self, key: Key) -> int:
        """What this index's file takes on disk (0 when it is missing)."""
        try:
            return os.lstat(self.path(key)).st_blocks * 512
        except (OSError, AttributeError):
            return 0

    def set_aside(self, key: Key) -> Path:
        """Move an unusable file out of the way, as ``<name>.f32.damaged`` (replacing an older one), so that
        the next append starts a new file; where it went."""
        self.forget(key)
        path = self.path(key)
        aside = path.with_name(path.name + ".damaged")
        if os.path.isdir(aside) and not os.path.islink(aside):
            import shutil

            shutil.rmtree(aside)
        os.replace(path, aside)
        return aside

    def close_writers(self) -> None:
        """Close the handles appended through (their locks go with them); reads reopen the files."""
        for store in self._writers.values():
            store.close()
        self._writers.clear()

    def forget(self, key: Key) -> None:
        """Close the handles of a file replaced or deleted: the next use opens what is there now."""
        for handles in (self._readers, self._writers):
            store = handles.pop(key, None)
            if store is not None:
                store.close()

    def close(self) -> None:
        self.close_writers()
        for store in self._readers.values():
            store.close()
        self._readers.clear()
