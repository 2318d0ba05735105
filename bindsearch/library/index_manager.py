"""Which index answers for each modality (and for its time windows), loaded once per process and kept in
step with what is committed.

An index is one of the engines of ``bindsearch.ann``, chosen by size: exact (flat) while a modality has
few enough vectors, built from the vector file when first used and never saved; approximate
(IVF-RaBitQ, re-ranked from the vector file) above that, saved as ``index/<name>.ivf`` by the build that
made it. What changed since a build is read from SQLite when the file is loaded: vectors added since go
to the index's exact tail, removed or replaced ones become tombstones (each built vector's CRC-32 is
saved with the codes). So a file is rewritten only by a rebuild, never by a commit.

Each commit that changes an index counts one more generation in the meta table, each build one more
build; a process whose loaded index is of an older generation reads what changed from SQLite, one of
an older build loads the new file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select

from ..ann.base import Fetch, IndexStats, VectorIndex
from ..ann.flat import FlatIndex, search_ids
from ..ann.idsets import in_sorted, sorted_ids
from ..modality import Modality
from ..windows import WINDOWED
from .database import raw_cursor
from .index_builds import IndexBuilder, Key, slot_fetch
from .records import IndexInfo, build_key, generation_key, index_keys, index_name
from .schema import Meta
from .slot_map import SlotMap

if TYPE_CHECKING:
    from .store import LibraryStore

log = logging.getLogger("bindsearch")

# A refresh that would change more than this share of a loaded index reloads it instead.
_RELOAD_SHARE = 0.5


@dataclass
class LoadedIndex:
    """An index in memory, the slots of the vectors it holds, and the generation and build it reflects."""

    index: VectorIndex
    slots: SlotMap
    generation: int
    build: int
    sample: np.ndarray | None = None  # calibration's reference sample, until the index changes


class IndexManager:
    """The loaded indexes of one open library, keyed (modality, windows?)."""

    def __init__(self, library: LibraryStore) -> None:
        self.library = library
        self.loaded: dict[Key, LoadedIndex] = {}
        # Ids left out of the indexes this process loads: vectors it found unusable and could not mark failed.
        self.dropped: dict[Key, set[int]] = {}
        self.builder = IndexBuilder(library, self)

    # -- loading ---------------------------------------------------------------------------------

    def forget(self, key: Key) -> None:
        """Drop a loaded index: the next use loads (or rebuilds) it again."""
        self.loaded.pop(key, None)

    def get(self, modality: Modality, windows: bool = False) -> VectorIndex:
        """The index of ``modality`` (of its windows with ``windows``), loaded once; ids are item ids, or
        window ids for a window index."""
        return self.entry((modality, windows)).index

    def entry(self, key: Key) -> LoadedIndex:
        if key not in self.loaded:
            generation, build = self.counters(key)
            slots = self.slot_map(key)
            if getattr(self.library.vectors, "shared", False):  # searched where it is kept: nothing to build
                self.loaded[key] = LoadedIndex(self.library.vectors.index(key, slots), slots, generation, build)
                return self.loaded[key]
            index, built = self.builder.load(key, slots, built_before=build > 0)
            self.apply_drops(key, index)
            self.loaded[key] = LoadedIndex(index, slots, generation, build if built is None else built)
        return self.loaded[key]

    def apply_drops(self, key: Key, index: VectorIndex) -> None:
        """Leave out of ``index`` the ids this process cannot use (see ``dropped``)."""
        if self.dropped.get(key):
            index.remove(np.array(sorted(self.dropped[key]), dtype=np.int64))

    def slot_map(self, key: Key) -> SlotMap:
        return self.library.slot_map(*key)

    def counters(self, key: Key) -> tuple[int, int]:
        """(generation, build) of this index as the meta table has them now."""
        with self.library._engine.connect() as conn:
            found = dict(conn.execute(select(Meta.key, Meta.value).where(
                Meta.key.in_([generation_key(*key), build_key(*key)]))).all())
        return int(found.get(generation_key(*key), 0)), int(found.get(build_key(*key), 0))

    def fetch(self, key: Key) -> Fetch:
        """ids -> their full-precision vectors, read from the vector file through the current slot map."""
        return slot_fetch(self.library.vectors, key, self.entry(key).slots)

    def refresh(self) -> None:
        """Bring the loaded indexes up to what other processes have committed since: every search and every
        writer starts with this, so that a library kept open sees what is indexed meanwhile."""
        if not self.loaded:
            return
        # Every search starts here: plain SQLite (0.05 ms, against 0.8 ms through a SQLAlchemy statement).
        with raw_cursor(self.library._engine) as cursor:
            current = dict(cursor.execute(f"SELECT key, value FROM {Meta.__tablename__} "
                                          "WHERE key LIKE 'generation:%' OR key LIKE 'build:%'").fetchall())
        for key, entry in list(self.loaded.items()):
            generation = int(current.get(generation_key(*key), 0))
            build = int(current.get(build_key(*key), 0))
            if build != entry.build:
                self.forget(key)  # rebuilt by another process: load its file
            elif generation != entry.generation:
                self._catch_up(key, entry, generation)

    def _catch_up(self, key: Key, entry: LoadedIndex, generation: int) -> None:
        newer = self.slot_map(key)
        gone, changed = entry.slots.changes(newer)
        if gone.size + changed.size > _RELOAD_SHARE * max(entry.index.size, 1):
            self.forget(key)
            return
        if getattr(entry.index, "shared", False):  # (other writers' vectors are in the collection already)
            entry.slots.assign(newer)
            entry.generation, entry.sample = generation, None
            return
        try:
            entry.index.remove(gone)
            entry.slots.assign(newer)
            if changed.size:
                entry.index.add(changed, self.library.vectors.read(key, newer.slots_of(changed)))
            self.apply_drops(key, entry.index)
        except BaseException:
            self.forget(key)
            raise
        entry.generation, entry.sample = generation, None

    # -- the writer's changes ----------------------------------------------------------------------

    def apply(self, key: Key, generation: int, removed: np.ndarray, ids: np.ndarray, vectors: np.ndarray,
              slots: np.ndarray, crcs: np.ndarray) -> None:
        """Mirror one committed batch in a loaded index (an index not loaded is read as committed when used)."""
        entry = self.loaded.get(key)
        if entry is None:
            return
        try:
            entry.index.remove(removed)
            entry.slots.drop(removed)
            if ids.size:
                entry.slots.put(ids, slots, crcs)
                entry.index.add(ids, vectors)
        except BaseException:
            # Interrupted (Ctrl-C) after the commit: the index may miss it. The next use reads it again.
            self.forget(key)
            raise
        entry.generation, entry.sample = generation, None

    # -- what searches ask ----------------------------------------------------------------------------

    def exact(self, modality: Modality, windows: bool = False) -> VectorIndex:
        """An index of ``modality`` that answers exactly, whatever its engine (``query --exact``)."""
        key = (modality, windows)
        index = self.get(modality, windows)
        return index if isinstance(index, FlatIndex) else ExactSearch(index, self.fetch(key))

    def flat(self, modality: Modality, windows: bool = False) -> FlatIndex:
        """An exact index holding every vector of ``modality`` in memory: the loaded one if it is exact, else
        one built for the caller (``duplicates`` compares every vector with every other)."""
        key = (modality, windows)
        index = self.get(modality, windows)
        if isinstance(index, FlatIndex):
            return index
        flat = self.builder.flat(key, self.entry(key).slots)
        self.apply_drops(key, flat)
        return flat

    def reference_sample(self, modality: Modality, size: int = 512) -> np.ndarray:
        """Vectors of ``modality`` that calibration measures a query against: a sample of its items'
        vectors, and of its time windows' where it has any (kept by each index until it changes)."""
        keys = [(modality, False)] + ([(modality, True)] if modality in WINDOWED else [])
        parts = [self._sample(key, size) for key in keys]
        parts = [p for p in parts if p.shape[0]] or parts[:1]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _sample(self, key: Key, size: int) -> np.ndarray:
        entry = self.entry(key)
        if entry.sample is None or entry.sample.shape[0] > size:
            ids = entry.slots.spread(size)
            if self.dropped.get(key):
                ids = ids[~in_sorted(ids, sorted_ids(list(self.dropped[key])))]
            entry.sample = self.fetch(key)(ids)
        return entry.sample

    def candidate_vectors(self, keys: Sequence[tuple[int, int | None]]) -> np.ndarray:
        """The vectors of search candidates, (item id, window id or None) each, from the vector files."""
        out = np.zeros((len(keys), self.library.dim), dtype=np.float32)
        modality_of = {i: m for i, (_, m) in self.library.items([item for item, _ in keys]).items()}
        wanted: dict[Key, list[tuple[int, int]]] = {}
        for row, (item_id, window_id) in enumerate(keys):
            modality = modality_of.get(item_id)
            if modality is not None:  # (deleted meanwhile: a vector that resembles nothing kept)
                key = (modality, window_id is not None)
                wanted.setdefault(key, []).append((row, item_id if window_id is None else window_id))
        for key, rows in wanted.items():
            slots = self.entry(key).slots
            at, ids = (np.array(column, dtype=np.int64) for column in zip(*rows))
            present = slots.crcs_of(ids) >= 0
            if present.any():
                out[at[present]] = self.library.vectors.read(key, slots.slots_of(ids[present]))
        return out

    def modalities_with_vectors(self) -> list[Modality]:
        """The modalities whose index holds vectors, in the usual order."""
        with self.library._engine.connect() as conn:
            written = set(conn.execute(select(Meta.key).where(Meta.key.like("generation:%"))).scalars())
        return [m for m in self.library.held_modalities() if generation_key(m) in written and self.get(m).size > 0]

    def keys_with_vectors(self) -> list[Key]:
        """Every index (item and window ones) that holds vectors, in the usual order."""
        return [key for key in index_keys(self.modalities_with_vectors()) if self.get(*key).size]

    def info(self) -> list[IndexInfo]:
        """Every index that holds vectors, with its engine's stats and the size of its file."""
        return [IndexInfo(index_name(*key), self.get(*key).stats(), self.builder.file_bytes(key),
                          self.library.vectors.allocated_bytes(key))
                for key in self.keys_with_vectors()]


class ExactSearch(VectorIndex):
    """Exact search over what an approximate index holds, its vectors read through ``fetch`` a block at a
    time: the answer every approximate one is measured against."""

    kind = "exact"

    def __init__(self, index: VectorIndex, fetch: Fetch) -> None:
        self.inner, self.fetch, self.dim = index, fetch, index.dim

    @property
    def size(self) -> int:
        return self.inner.size

    def ids(self) -> np.ndarray:
        return self.inner.ids()

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               excluded: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        live = sorted_ids(self.inner.ids())
        ids = live if allowed is None else sorted_ids(allowed)[in_sorted(sorted_ids(allowed), live)]
        return search_ids(queries, ids, self.fetch, k, excluded)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        raise TypeError("an exact view of an index is read-only")

    remove = add  # type: ignore[assignment]

    def save(self, path: str) -> None:
        raise TypeError("an exact view of an index is not saved")

    @classmethod
    def load(cls, path: str, dim: int, fetch: Fetch | None) -> VectorIndex:
        raise TypeError("an exact view of an index is not loaded")

    def stats(self) -> IndexStats:
        return self.inner.stats()
