"""One modality's FAISS index: inner product over unit vectors, keyed by item id."""

from __future__ import annotations

import os
import tempfile

import numpy as np


class VectorIndex:
    """Exact inner-product search (``IndexIDMap2`` over ``IndexFlatIP``).

    Ids are the library's item ids, so a hit maps straight to its SQLite row.
    """

    def __init__(self, dim: int, index: object | None = None) -> None:
        import faiss

        self.dim = dim
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

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

    def remove(self, ids: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and self.size:
            self.index.remove_ids(ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query row, best first; missing slots have id -1."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (n, {self.dim}), got {queries.shape}")
        if k <= 0 or self.size == 0:
            return (np.zeros((queries.shape[0], 0), np.float32), np.zeros((queries.shape[0], 0), np.int64))
        scores, ids = self.index.search(queries, min(k, self.size))
        return scores, ids

    def save(self, path: str) -> None:
        """Write atomically: a temporary file in the same folder, flushed, then renamed over ``path``."""
        import faiss

        folder = os.path.dirname(path) or "."
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".faiss", dir=folder)
        os.close(fd)
        try:
            faiss.write_index(self.index, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str, dim: int) -> VectorIndex:
        """Read a saved index; raises ValueError if it is unreadable or of another dimension."""
        import faiss

        try:
            index = faiss.read_index(path)
        except RuntimeError as exc:
            raise ValueError(f"unreadable FAISS index: {str(exc).splitlines()[0]}") from None
        if index.d != dim or not isinstance(index, faiss.IndexIDMap2):
            raise ValueError(f"FAISS index is not an id-mapped index of dimension {dim}")
        return cls(dim, index)
