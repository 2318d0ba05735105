"""One modality's FAISS index: inner product over unit vectors, keyed by item id."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..regular_files import check_regular

# A saved index ends with the trailer of ``ann.files`` (a marker, the length of the FAISS data before it
# and their CRC-32), so that a file damaged on disk is found when it is loaded (FAISS reads past neither).
_MARKER = b"bsindex1"


class VectorIndex:
    """Exact inner-product search (``IndexIDMap2`` over ``IndexFlatIP``).

    Ids are the library's item ids, so a hit maps straight to its SQLite row.
    """

    def __init__(self, dim: int, index: object | None = None) -> None:
        import faiss

        self.dim = dim
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._sample: np.ndarray | None = None  # a reference sample of the vectors, until they change

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        """Every id in the index, as int64."""
        import faiss

        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (ids.size, self.dim):
            raise ValueError(f"expected vectors of shape {(ids.size, self.dim)}, got {vectors.shape}")
        if ids.size:
            self.index.add_with_ids(vectors, ids)
            self._sample = None

    def remove(self, ids: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and self.size:
            self.index.remove_ids(ids)
            self._sample = None

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               excluded: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query row, best first; missing slots have id -1.

        With ``allowed`` (ids), only those vectors are ranked: the k best of them;
        ``excluded`` ids are never returned.
        """
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (n, {self.dim}), got {queries.shape}")
        limit = self.size if allowed is None else min(self.size, int(np.asarray(allowed).size))
        if k <= 0 or limit == 0:
            return (np.zeros((queries.shape[0], 0), np.float32), np.zeros((queries.shape[0], 0), np.int64))
        selector = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        if excluded is not None and len(excluded):
            banned = faiss.IDSelectorBatch(np.ascontiguousarray(excluded, dtype=np.int64))
            not_banned = faiss.IDSelectorNot(banned)
            # (the C++ selectors point at one another: these locals keep them alive through the search)
            selector = not_banned if selector is None else faiss.IDSelectorAnd(selector, not_banned)
        if selector is None:
            return self.index.search(queries, min(k, limit))
        return self.index.search(queries, min(k, limit), params=faiss.SearchParameters(sel=selector))

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of the given ids, (n, dim); KeyError-free only for ids in the index."""
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.index.reconstruct(int(i)) for i in ids]).astype(np.float32, copy=False)

    def sample(self, size: int = 512) -> np.ndarray:
        """Up to ``size`` of the stored vectors, spread evenly over the index: (n, dim), kept until it changes.

        Deterministic, so that a library's calibrated scores do not move between identical queries.
        """
        from ..vectors import evenly_spaced

        if self._sample is None or self._sample.shape[0] != min(size, self.size):
            positions = evenly_spaced(self.size, size)
            flat = self.index.index  # the IndexFlatIP inside the id map, in insertion order
            self._sample = (np.stack([flat.reconstruct(int(p)) for p in positions]) if positions.size
                            else np.zeros((0, self.dim), np.float32)).astype(np.float32, copy=False)
        return self._sample

    def save(self, path: str) -> None:
        """Write atomically: a temporary file in the same folder, its checksum appended, flushed, then
        renamed over ``path``."""
        import faiss

        from ..ann import files  # (with the engines, which import FAISS: only once an index is written)

        def body(write: Callable[[bytes], None]) -> None:
            # Through Python's file, so that a failed write (a full disk) raises OSError: FAISS's own
            # writer only prints a failed close, and a cut file would be renamed into place.
            writer = faiss.PyCallbackIOWriter(write)
            faiss.write_index(self.index, writer)
            del writer

        files.write_atomic(path, _MARKER, body)

    @classmethod
    def load(cls, path: str, dim: int) -> VectorIndex:
        """Read a saved index; raises ValueError if it is unreadable, damaged (its checksum does not match)
        or of another dimension."""
        import faiss

        try:
            check_regular(path)  # FAISS (and the checksum) would wait forever on a FIFO in the index's place
        except OSError as exc:
            raise ValueError(f"unreadable FAISS index: {exc.strerror or exc}") from None
        from ..ann import files

        marker, _ = files.checked_payload(path)
        if marker != _MARKER:
            raise ValueError("the file has no checksum: older, or cut short")
        try:
            index = faiss.read_index(path)
        except RuntimeError as exc:
            raise ValueError(f"unreadable FAISS index: {str(exc).splitlines()[0]}") from None
        if index.d != dim or not isinstance(index, faiss.IndexIDMap2):
            raise ValueError(f"FAISS index is not an id-mapped index of dimension {dim}")
        return cls(dim, index)
