"""A library's vectors in Milvus: one collection per index (``<prefix>_image``, ``<prefix>_audio_windows``),
each vector under its item's (or window's) id, searched there.

The metadata database stays the source of truth: an item's ``slot`` is its own id, and its CRC-32 is kept
as for a vector file. Changes reach Milvus through the outbox (``outbox``) after their rows commit, so a
vector can be found in the database and not yet in Milvus (a writer killed between the two): reads look
in the outbox for what Milvus lacks. Several processes, on several machines, may write one library at once.

The same interface as ``VectorStores`` (``read``, ``chunks``, ``damaged``, ``rows``...), plus ``index``,
the searchable view of one collection that the index manager uses instead of building one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from ..ann.base import IndexStats, VectorIndex
from ..errors import LibraryError, VectorFileError
from ..modality import Modality
from . import outbox
from .records import index_name
from .slot_map import SlotMap
from .vector_files import ROW_DTYPE, row_crcs

Key = tuple[Modality, bool]  # (modality, windows?)
_CHUNK = 4096  # vectors fetched per request of ``chunks``

# Milvus Lite searches a FLAT collection exactly (and IVF trains on a handful of rows per segment, noisily);
# a server gets the engine's default (HNSW), re-scored exactly.
_LITE_INDEX = "FLAT"


def fetch_limit(rows: int, floor: int) -> int:
    """Up to how many allowed ids a search fetches their vectors and scores them here, rather than filtering in
    Milvus, for a collection of ``rows``: a fetch costs about 0.2 ms an id, a filtered search a walk over every
    row, about 0.5 µs each (Milvus Lite, 1024 dims: 1 000 ids fetched 193 ms, filtered 482 ms at 1M rows;
    100 fetched 22 ms, filtered 43 ms at 50k), so the two cost the same near rows / 400 ids. ``floor``: the
    engine's own limit, kept for small collections; never above 8 192 (a fetch's vectors stay in memory)."""
    return max(floor, min(rows // 400, 8192))


def collection_name(prefix: str, key: Key) -> str:
    """The collection of one index: letters, digits and underscores only, as Milvus requires."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}_{index_name(*key)}")


class MilvusVectors:
    """The vectors of one library in the Milvus at ``uri``, in collections named from ``prefix``."""

    shared = True  # searched where they are kept; several writers may commit at once

    def __init__(self, uri: str, prefix: str, dim: int, engine: Engine, folder: Path) -> None:
        from ..ann.milvus import parse_uri

        self.uri, self.prefix, self.dim = uri, prefix, dim
        self.target = parse_uri(uri)
        self.folder = folder  # (this machine's folder of the library: read notes, a server's record)
        self._engine = engine
        self._collections: dict[Key, object] = {}

    def collection(self, key: Key):  # -> MilvusIndex
        found = self._collections.get(key)
        if found is None:
            from ..ann.milvus import TOKEN_VARIABLE, MilvusIndex

            index_type = _LITE_INDEX if self.target.kind == "lite" else None
            found = self._collections[key] = MilvusIndex(self.uri, collection_name(self.prefix, key), self.dim,
                                                         index_type=index_type,
                                                         token=os.environ.get(TOKEN_VARIABLE))
        return found

    def check(self) -> None:
        """LibraryError (one line, naming the URI) unless Milvus answers and holds or can make the collections."""
        from ..modality import Modality as M

        self.collection((M.IMAGE, False))

    # -- what the index manager and the writer ask ---------------------------------------------------------

    def index(self, key: Key, slots: SlotMap) -> CollectionIndex:
        return CollectionIndex(self.collection(key), slots, self.dim)

    def apply(self, name: str, removed: np.ndarray, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Make one run of committed changes in the collection of index ``name`` (see ``outbox.flush``)."""
        key = next((k for k in _keys() if index_name(*k) == name), None)
        if key is None:
            raise LibraryError(f"a pending change names an index this bindsearch does not know: {name}")
        collection = self.collection(key)
        if removed.size:
            collection.remove(removed)
        if ids.size:
            collection.add(ids, vectors)

    def flush(self) -> int:
        """Make the committed changes still pending; how many were made."""
        return outbox.flush(self._engine, self.dim, self.apply)

    # -- the VectorStores interface --------------------------------------------------------------------------

    def exists(self, key: Key) -> bool:
        return True

    def path(self, key: Key) -> str:
        return f"{self.uri} collection {collection_name(self.prefix, key)}"

    def rows(self, key: Key) -> int:
        return self.collection(key).size

    def read(self, key: Key, slots: np.ndarray) -> np.ndarray:
        """The vectors of the ids ``slots`` (a Milvus library's slots are ids), in that order."""
        ids = np.asarray(slots, dtype=np.int64).reshape(-1)
        if not ids.size:
            return np.zeros((0, self.dim), np.float32)
        found_ids, found = self.collection(key).vectors(ids)
        at = np.searchsorted(found_ids, ids)
        at = np.minimum(at, max(found_ids.size - 1, 0))
        present = found_ids.size > 0
        hit = (found_ids[at] == ids) if present else np.zeros(ids.size, bool)
        out = np.zeros((ids.size, self.dim), np.float32)
        if present:
            out[hit] = found[at[hit]]
        if not hit.all():
            waiting = outbox.pending_vectors(self._engine, index_name(*key), ids[~hit].tolist(), self.dim)
            missing = [int(i) for i in ids[~hit] if int(i) not in waiting]
            if missing:
                raise VectorFileError(f"{self.path(key)} holds no vector for id {missing[0]}")
            for n in np.flatnonzero(~hit):
                out[n] = waiting[int(ids[n])]
        return out

    def chunks(self, key: Key, slots: np.ndarray, size: int | None = None) -> Iterator[np.ndarray]:
        ids = np.asarray(slots, dtype=np.int64).reshape(-1)
        step = size or _CHUNK
        return (self.read(key, ids[begin : begin + step]) for begin in range(0, ids.size, step))

    def damaged(self, key: Key, slots: np.ndarray, crcs: np.ndarray) -> np.ndarray:
        """Positions of the ids whose vector is missing or has not the CRC-32 recorded."""
        ids = np.asarray(slots, dtype=np.int64).reshape(-1)
        expected = np.asarray(crcs, dtype=np.int64).astype(np.uint32)
        bad: list[np.ndarray] = []
        for begin in range(0, ids.size, _CHUNK):
            part = ids[begin : begin + _CHUNK]
            try:
                vectors = self.read(key, part)
            except VectorFileError:
                found_ids, _ = self.collection(key).vectors(part)
                bad.append(begin + np.flatnonzero(~np.isin(part, found_ids)))
                continue
            wrong = row_crcs(vectors.astype(ROW_DTYPE, copy=False)) != expected[begin : begin + _CHUNK]
            bad.append(begin + np.flatnonzero(wrong))
        return np.concatenate(bad) if bad else np.zeros(0, np.int64)

    def append(self, key: Key, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise TypeError("a Milvus library's vectors are written through the outbox, by id")

    def free_unused(self, key: Key, live_slots: np.ndarray) -> int:
        """Delete the vectors no item points at (left by a crash mid-removal on another store); 0 bytes known."""
        live = np.asarray(live_slots, dtype=np.int64)
        stray = np.setdiff1d(self.collection(key).ids(), live)
        if stray.size:
            self.collection(key).remove(stray)
        return 0

    def allocated_bytes(self, key: Key) -> int:
        return 0  # (Milvus keeps its own files, on its own machines)

    def set_aside(self, key: Key) -> str:
        raise VectorFileError(f"{self.path(key)} is unusable; Milvus itself must be repaired")

    def drop_all(self) -> None:
        """Delete every collection of the library (a library that held no vectors, bound to another space)."""
        for key in _keys():
            self.collection(key)._call("dropping the collection", "drop_collection", collection_name(self.prefix, key))
        self.close()

    def close_writers(self) -> None:
        pass

    def forget(self, key: Key) -> None:
        pass

    def close(self) -> None:
        for collection in self._collections.values():
            collection.close()
        self._collections.clear()


def _keys() -> list[Key]:
    from ..modality import BUILTIN_MODALITIES

    return [(m, w) for m in BUILTIN_MODALITIES for w in (False, True)]


class CollectionIndex(VectorIndex):
    """What the index manager holds for a Milvus index: the live ids are the slot map's (the metadata's: no
    count asked of Milvus), searches go to the collection. Commits reach the collection through the outbox,
    so ``add`` and ``remove`` change nothing here: the slot map the manager keeps is the index's truth."""

    kind = "milvus"
    shared = True

    def __init__(self, collection, slots: SlotMap, dim: int) -> None:
        self.collection, self.slots, self.dim = collection, slots, dim

    @property
    def size(self) -> int:
        return self.slots.size

    def ids(self) -> np.ndarray:
        return self.slots.ids

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        pass

    def remove(self, ids: np.ndarray) -> None:
        pass

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               excluded: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        self.collection.fetch_limit = fetch_limit(self.slots.size, self.collection.fetch_limit)
        if allowed is None and self.slots.size and k >= self.slots.size:
            allowed = self.slots.ids  # (every id: Milvus need not count what it holds)
        return self.collection.search(queries, min(k, max(self.slots.size, 1)), allowed, excluded)

    def save(self, path: str) -> None:
        raise TypeError("a Milvus collection is kept by Milvus, not saved")

    @classmethod
    def load(cls, path: str, dim: int, fetch=None) -> VectorIndex:
        raise TypeError("a Milvus collection is opened by the library, not loaded")

    def stats(self) -> IndexStats:
        exact = self.collection.index_type == "FLAT"
        return IndexStats(kind=f"milvus-{self.collection.index_type.lower()}", size=self.slots.size, built_at=None,
                          expected_recall=1.0 if exact else None, tail=0, removed=0)
