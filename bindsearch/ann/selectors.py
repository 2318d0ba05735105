"""FAISS id selectors built from id arrays, kept alive together.

A FAISS selector points at the arrays and the other selectors it was made from without owning them, so a
``Selection`` holds every piece until the search that uses it is over.
"""

from __future__ import annotations

import faiss
import numpy as np

# A bitmap of the ids up to the largest is used when it costs at most about this many bytes per id it holds
# (or 1 MiB in all): it is built in one numpy pass and tested in one lookup, where FAISS's hash set takes a
# hash insertion per id to build, which dominates a search given a large ``allowed`` set.
_BITMAP_BYTES_PER_ID = 8
_BITMAP_FLOOR = 1 << 20


class Selection:
    """``include`` (ids, or None for every id) less ``exclude`` (ids, or None), as one FAISS selector;
    ``selector`` is None when it lets every id through."""

    def __init__(self, include: np.ndarray | None = None, exclude: np.ndarray | None = None) -> None:
        self._keep: list[object] = []
        parts = []
        if include is not None:
            parts.append(self._set(include))
        if exclude is not None and exclude.size:
            parts.append(self._hold(faiss.IDSelectorNot(self._set(exclude))))
        self.selector = None
        for part in parts:
            self.selector = part if self.selector is None else self._hold(faiss.IDSelectorAnd(self.selector, part))

    def _hold(self, thing: object) -> object:
        self._keep.append(thing)
        return thing

    def _set(self, ids: np.ndarray) -> object:
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and ids.min() >= 0:
            top = int(ids.max())
            if top // 8 + 1 <= max(_BITMAP_FLOOR, _BITMAP_BYTES_PER_ID * ids.size):
                bits = np.zeros(top + 1, dtype=bool)
                bits[ids] = True
                bitmap = self._hold(np.packbits(bits, bitorder="little"))
                return self._hold(faiss.IDSelectorBitmap(bitmap.size, faiss.swig_ptr(bitmap)))
        self._hold(ids)
        return self._hold(faiss.IDSelectorBatch(ids.size, faiss.swig_ptr(ids)))
