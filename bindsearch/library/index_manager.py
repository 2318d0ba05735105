"""Which FAISS index answers for each modality, loaded once per process, rebuilt from stored vectors when
its file is missing, stale or damaged, and saved under the generation of the library it reflects.

Each commit that changes an index counts one more generation in the library's meta table; a file
is named after the generation it holds (``index/<modality>-g<N>.faiss``), so a reader knows at once
whether a file is current, and a process that holds an older index in memory loads the new one.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import func, select

from ..modality import Modality
from ..windows import WINDOWED
from .records import INDEX_DIR
from .schema import STATUS_OK, Item, Meta, Window
from .soundness import index_disagreement
from .vector_index import VectorIndex
from .writer import _generation_key, _index_name

if TYPE_CHECKING:
    from .store import LibraryStore

log = logging.getLogger("bindsearch")

Key = tuple[Modality, bool]  # (modality, windows?)


class IndexManager:
    """The loaded indexes of one open library, keyed (modality, windows?)."""

    def __init__(self, library: LibraryStore) -> None:
        self.library = library
        self.loaded: dict[Key, VectorIndex] = {}
        # Ids left out of the indexes this process loads: unusable vectors of a library it cannot repair.
        self.dropped: dict[Key, set[int]] = {}
        self.generations: dict[Key, int] = {}  # the generation each loaded index is of

    def forget(self, key: Key) -> None:
        """Drop a loaded index: the next use loads (or rebuilds) it again."""
        self.loaded.pop(key, None)

    def refresh(self) -> None:
        """Forget the loaded indexes another process has changed since (their generation moved on):
        the next use loads them again. Every search starts with this, so that a library kept open sees
        what other processes index meanwhile."""
        if not self.loaded:
            return
        with self.library._engine.connect() as conn:
            current = dict(conn.execute(select(Meta.key, Meta.value).where(Meta.key.like("generation:%"))).all())
        for key in list(self.loaded):
            if int(current.get(_generation_key(*key), 0)) != self.generations.get(key):
                self.loaded.pop(key, None)

    def get(self, modality: Modality, windows: bool = False) -> VectorIndex:
        """The FAISS index of ``modality`` (of its windows with ``windows``), loaded once.

        Rebuilt from SQLite if stale, missing or corrupt. Ids are item ids, or
        window ids for a window index.
        """
        key = (modality, windows)
        if key not in self.loaded:
            index = self._load_or_rebuild(modality, windows)
            if key in self.dropped:
                index.remove(np.array(sorted(self.dropped[key]), dtype=np.int64))
            self.loaded[key] = index
        return self.loaded[key]

    def _load_or_rebuild(self, modality: Modality, windows: bool) -> VectorIndex:
        generation, count = self.generation_and_count(modality, windows)
        self.generations[(modality, windows)] = generation
        path = self.index_file(modality, windows, generation)
        problem = None
        if count == 0:
            return VectorIndex(self.library.dim)
        if not os.path.exists(path):
            problem = "missing or out of date"
        else:
            try:
                index = VectorIndex.load(path, self.library.dim)
                if index.size == count:
                    with self.library._engine.connect() as conn:
                        problem = index_disagreement(conn, index, modality, windows)
                    if problem is None:
                        return index
                else:
                    problem = f"holds {index.size} vectors, the library {count}"
            except ValueError as exc:
                problem = str(exc)
        ids, vectors = self.library.stored_vectors(modality, windows)
        index = VectorIndex(self.library.dim)
        index.add(ids, vectors)
        log.warning("rebuilt the %s index of library %s from stored vectors (%s; %d vectors)",
                    _index_name(modality, windows), self.library.path, problem, index.size)
        if self.library.read_only:
            return index  # answers queries from memory
        try:
            self.save(modality, windows, index, generation)
        except OSError:
            pass  # a library that cannot be written still answers queries from the rebuilt index in memory
        return index

    def generation_and_count(self, modality: Modality, windows: bool = False) -> tuple[int, int]:
        if windows:
            count_query = (
                select(func.count()).select_from(Window).join(Item, Window.item_id == Item.id)
                .where(Item.modality == modality.value)
            )
        else:
            count_query = select(func.count()).select_from(Item).where(
                Item.modality == modality.value, Item.status == STATUS_OK
            )
        with self.library._engine.connect() as conn:
            key = _generation_key(modality, windows)
            generation = conn.execute(select(Meta.value).where(Meta.key == key)).scalar()
            count = conn.execute(count_query).scalar_one()
        return int(generation or 0), int(count)

    def index_file(self, modality: Modality, windows: bool, generation: int) -> str:
        return str(self.library.path / INDEX_DIR / f"{_index_name(modality, windows)}-g{generation}.faiss")

    def save(self, modality: Modality, windows: bool, index: VectorIndex, generation: int) -> None:
        target = self.index_file(modality, windows, generation)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        index.save(target)
        # Older generations go; a newer one (a writer saved it meanwhile) stays.
        name = _index_name(modality, windows)
        for old in glob.glob(str(self.library.path / INDEX_DIR / f"{name}-g*.faiss")):
            number = os.path.basename(old)[len(name) + 2 : -len(".faiss")]
            if number.isdigit() and int(number) < generation:
                try:
                    os.unlink(old)
                except OSError:
                    pass

    def reference_sample(self, modality: Modality, size: int = 512) -> np.ndarray:
        """Vectors of ``modality`` that calibration measures a query against: a sample of its items'
        vectors, and of its time windows' where it has any (kept by each index until it changes)."""
        parts = [self.get(modality).sample(size)]
        if modality in WINDOWED:
            windows = self.get(modality, windows=True)
            if windows.size:
                parts.append(windows.sample(size))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def candidate_vectors(self, keys: Sequence[tuple[int, int | None]]) -> np.ndarray:
        """The vectors of search candidates, (item id, window id or None) each, from the FAISS indexes."""
        if not keys:
            return np.zeros((0, self.library.dim), dtype=np.float32)
        modality_of = {i: m for i, (_, m) in self.library.items([item for item, _ in keys]).items()}
        rows = []
        for item_id, window_id in keys:
            modality = modality_of.get(item_id)
            if modality is None:  # deleted meanwhile: a vector that resembles nothing kept
                rows.append(np.zeros(self.library.dim, dtype=np.float32))
            elif window_id is None:
                rows.append(self.get(modality).vectors(np.array([item_id]))[0])
            else:
                rows.append(self.get(modality, windows=True).vectors(np.array([window_id]))[0])
        return np.stack(rows)

    def modalities_with_vectors(self) -> list[Modality]:
        """The modalities whose index holds vectors, in the usual order (from the loaded indexes: no count query)."""
        with self.library._engine.connect() as conn:
            written = set(conn.execute(select(Meta.key).where(Meta.key.like("generation:%"))).scalars())
        return [m for m in Modality if _generation_key(m) in written and self.get(m).size > 0]
