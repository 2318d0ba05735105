"""Building a library's indexes from its vector files: exact ones when loaded, approximate ones when a
modality outgrows exact search, again when their tail or tombstones have grown, and whenever their file
is missing or unusable.

A build streams the vectors a chunk at a time (checking each row's CRC-32), writes its file aside and
renames it into place (``ann.files``), and only then counts one more build in the meta table: a process
killed at any point leaves the old file or the new one, and the library answers either way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.exc import DatabaseError, OperationalError

from ..ann.approximate import ApproximateIndex
from ..ann.base import Fetch, VectorIndex
from ..ann.choose import build_index, load_index, should_rebuild
from ..ann.defaults import BACK_TO_FLAT, TARGET_RECALL, exact_limit
from ..ann.flat import FlatIndex
from ..modality import Modality
from .records import INDEX_DIR, build_key, index_name
from .schema import bump_counter
from .slot_map import SlotMap
from .vector_files import ROW_DTYPE, row_crcs
from .vector_stores import VectorStores

if TYPE_CHECKING:
    from .index_manager import IndexManager
    from .store import LibraryStore

log = logging.getLogger("bindsearch")

Key = tuple[Modality, bool]  # (modality, windows?)
INDEX_SUFFIX = ".ivf"
_CHUNK = 4096  # vectors read per step of a build: 16 MiB at 1024 dims


def slot_fetch(stores: VectorStores, key: Key, slots: SlotMap) -> Fetch:
    """ids -> their vectors, read from the vector file at the slots ``slots`` holds when called."""

    def fetch(ids: np.ndarray) -> np.ndarray:
        return stores.read(key, slots.slots_of(ids))

    return fetch


class IndexBuilder:
    """Loads, builds and replaces the indexes of one library."""

    def __init__(self, library: LibraryStore, manager: IndexManager) -> None:
        self.library = library
        self.manager = manager

    def index_file(self, key: Key) -> str:
        return str(self.library.path / INDEX_DIR / f"{index_name(*key)}{INDEX_SUFFIX}")

    def file_bytes(self, key: Key) -> int:
        try:
            return os.stat(self.index_file(key)).st_size
        except OSError:
            return 0

    # -- loading -----------------------------------------------------------------------------------

    def load(self, key: Key, slots: SlotMap, built_before: bool = True) -> tuple[VectorIndex, int | None]:
        """The index of the vectors in ``slots``: (index, the build it counted, if it built one).
        ``built_before``: whether the meta table counts a build of it (a first build is no repair)."""
        dim = self.library.dim
        if slots.size == 0:
            return FlatIndex(dim), None
        if slots.size <= exact_limit(dim):
            return self.flat(key, slots), None
        index, problem = self._load_file(key, slots)
        if index is not None:
            return index, None
        if built_before or not problem.endswith("missing"):
            log.warning("building the %s index of library %s from its stored vectors (%s; %d vectors)",
                        index_name(*key), self.library.path, problem, slots.size)
        else:
            log.info("building the %s index of library %s (%d vectors)", index_name(*key), self.library.path,
                     slots.size)
        return self.build(key, slots)

    def _load_file(self, key: Key, slots: SlotMap) -> tuple[ApproximateIndex | None, str]:
        path = self.index_file(key)
        if not os.path.lexists(path):
            return None, "its file is missing"
        try:
            index = load_index(path, self.library.dim, slot_fetch(self.library.vectors, key, slots))
        except ValueError as exc:
            return None, f"its file is unusable: {exc}"
        if not isinstance(index, ApproximateIndex) or index.versions is None:
            return None, "its file is not an approximate index of this library"
        built = SlotMap(index.built_ids, np.zeros(index.built_ids.size, np.int64), index.versions)
        gone, changed = built.changes(slots)
        if 2 * (gone.size + changed.size) > slots.size:  # mostly not these vectors: another library's file
            return None, "its file holds other vectors than the library"
        index.remove(gone)
        if changed.size:
            index.add(changed, self.library.vectors.read(key, slots.slots_of(changed)))
        return index, ""

    # -- building ----------------------------------------------------------------------------------

    def flat(self, key: Key, slots: SlotMap) -> FlatIndex:
        """An exact index of every vector in ``slots``, less those whose rows are damaged."""
        damaged: list[np.ndarray] = []
        index = FlatIndex.build(self.library.dim, lambda: self._chunks(key, slots, damaged, keep=False))
        self._damaged(key, damaged)
        return index

    def build(self, key: Key, slots: SlotMap) -> tuple[VectorIndex, int | None]:
        """An approximate index of every vector in ``slots``, saved (where the library can be written) and
        counted as a build: (index, the build number, or None when not saved)."""
        damaged: list[np.ndarray] = []
        fetch = slot_fetch(self.library.vectors, key, slots)
        index = build_index(slots.ids, lambda: self._chunks(key, slots, damaged, keep=True), self.library.dim,
                            fetch, kind=ApproximateIndex.kind)
        assert isinstance(index, ApproximateIndex)
        if index.expected_recall is not None and index.expected_recall < TARGET_RECALL:
            log.warning("the %s index of library %s finds %.0f%% of the true 10 nearest neighbours of its own "
                        "vectors, at its widest search (these vectors have little structure for an approximate "
                        "index); query --exact searches every vector", index_name(*key), self.library.path,
                        100 * index.expected_recall)
        index.versions = slots.crcs_of(index.built_ids)
        if damaged:
            index.remove(np.concatenate(damaged))
            self._damaged(key, damaged)
        return index, self._save(key, index)

    def _chunks(self, key: Key, slots: SlotMap, damaged: list[np.ndarray], keep: bool
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of ``slots`` a chunk at a time, each row's CRC-32 checked. A damaged row (or one the
        file does not hold: a file cut short, missing or unusable) is left out (``keep`` False) or zeroed
        (``keep`` True, for a build that must hold every id); its id is noted in ``damaged``."""
        stores = self.library.vectors
        held = stores.rows(key)
        for begin in range(0, slots.size, _CHUNK):
            ids, at = slots.ids[begin : begin + _CHUNK], slots.slots[begin : begin + _CHUNK]
            inside = (at >= 0) & (at < held)
            if inside.all():  # (read in place: one chunk in memory, not two)
                vectors = stores.read(key, at)
            else:
                vectors = np.zeros((ids.size, self.library.dim), np.float32)
                if inside.any():
                    vectors[inside] = stores.read(key, at[inside])
            crcs = slots.crcs[begin : begin + _CHUNK].astype(np.uint32)
            bad = ~inside | (row_crcs(vectors.astype(ROW_DTYPE, copy=False)) != crcs)
            if bad.any():
                damaged.append(ids[bad])
                if keep:
                    vectors[bad] = 0.0
                else:
                    ids, vectors = ids[~bad], vectors[~bad]
            yield ids, vectors

    def _damaged(self, key: Key, damaged: list[np.ndarray]) -> None:
        if damaged:
            from .soundness import vectors_damaged

            vectors_damaged(self.library, key, np.concatenate(damaged))

    def _save(self, key: Key, index: ApproximateIndex) -> int | None:
        """Write the index's file and count the build; None where the library cannot be written (the index
        then answers from memory)."""
        if self.library.read_only:
            return None
        path = self.index_file(key)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            index.save(path)
            with self.library._engine.begin() as conn:
                return bump_counter(conn, build_key(*key))
        except (OSError, OperationalError, DatabaseError) as exc:
            log.warning("could not save the %s index of library %s (%s): it answers from memory",
                        index_name(*key), self.library.path, getattr(exc, "strerror", None) or exc)
            return None

    def _drop_file(self, key: Key) -> int | None:
        path = self.index_file(key)
        try:
            if os.path.lexists(path):
                os.unlink(path)
            with self.library._engine.begin() as conn:
                return bump_counter(conn, build_key(*key))
        except (OSError, OperationalError, DatabaseError):
            return None

    # -- upkeep ------------------------------------------------------------------------------------

    def maintain(self, key: Key, final: bool, force: bool = False) -> bool:
        """Change engines or rebuild where the index has grown or drifted; True if it did.

        ``final`` at the end of a run: rebuild once the tail or tombstones pass their share (``ann.defaults``).
        During a run only once the tail outgrows what was built, so that an index grown from nothing is
        built a logarithmic number of times. ``force``: build an approximate index now if the modality has
        outgrown exact search, whatever its drift (``bindsearch optimize``).
        """
        entry = self.manager.entry(key)
        index, limit = entry.index, exact_limit(self.library.dim)
        if isinstance(index, FlatIndex):
            due = index.size > limit
        elif isinstance(index, ApproximateIndex):
            if index.size < BACK_TO_FLAT * limit:
                entry.index = self.flat(key, entry.slots)
                self.manager.apply_drops(key, entry.index)
                entry.build = self._drop_file(key) or entry.build
                return True
            built_live = index.built_ids.size - index.removed.size
            drift = index.tail.size + index.removed.size
            grown = should_rebuild(index) if final else index.tail.size > max(built_live, limit)
            due = grown or (force and drift > 0)
        else:
            due = False
        if not due:
            return False
        log.info("building the %s index of library %s (%d vectors)", index_name(*key), self.library.path, index.size)
        entry.index, build = self.build(key, entry.slots)
        self.manager.apply_drops(key, entry.index)
        entry.build = build if build is not None else entry.build
        entry.sample = None
        return True
