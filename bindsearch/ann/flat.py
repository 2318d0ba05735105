"""The exact engine: every full-precision vector in RAM, every query compared with all of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import faiss
import numpy as np

from ..errors import first_line
from . import files
from .base import (
    Fetch,
    IndexStats,
    VectorIndex,
    as_ids,
    as_queries,
    as_vectors,
    check_distinct,
    empty_result,
)
from .idsets import in_sorted, sorted_ids
from .selectors import Selection
from .topk import EMPTY_SCORE, exact_search

# The marker of the files the library has always written for its exact indexes: they load unchanged.
MARKER = b"bsindex1"


class FlatIndex(VectorIndex):
    """Exact inner-product search (``IndexIDMap2`` over ``IndexFlatIP``); ids map straight to their rows."""

    kind = "flat"

    def __init__(self, dim: int, index: object | None = None) -> None:
        self.dim = dim
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._sorted: np.ndarray | None = None  # the ids, ascending, until they change

    @classmethod
    def build(cls, dim: int, chunks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]) -> FlatIndex:
        """An index of every (ids, vectors) chunk, added one at a time."""
        index = cls(dim)
        for ids, vectors in chunks():
            index.add(ids, vectors)
        return index

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        """Every id, ascending."""
        if self._sorted is None:
            self._sorted = np.sort(faiss.vector_to_array(self.index.id_map).astype(np.int64))
            self._sorted.setflags(write=False)  # handed out as it is: a caller's change would corrupt it
        return self._sorted

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = as_ids(ids)
        vectors = as_vectors(vectors, ids.size, self.dim)
        check_distinct(ids)
        if ids.size:
            self.remove(ids)  # an id added again gets its new vector, not a second one
            self.index.add_with_ids(vectors, ids)
            self._sorted = None

    def remove(self, ids: np.ndarray) -> None:
        ids = as_ids(ids)
        if ids.size and self.size:
            selection = Selection(ids)  # held here: the selector reads its arrays until remove_ids returns
            self.index.remove_ids(selection.selector)
            self._sorted = None

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors (n, dim) of ids in the index; KeyError for one that is not."""
        ids = as_ids(ids)
        out = np.empty((ids.size, self.dim), np.float32)
        for row, i in enumerate(ids):
            try:
                out[row] = self.index.reconstruct(int(i))
            except RuntimeError:
                raise KeyError(f"id {int(i)} is not in the index") from None
        return out

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               excluded: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = as_queries(queries, self.dim)
        if allowed is not None:
            allowed = sorted_ids(allowed)
            allowed = allowed[in_sorted(allowed, self.ids())]
        limit = self.size if allowed is None else allowed.size
        if k <= 0 or limit == 0:
            return empty_result(queries.shape[0])
        selection = Selection(allowed, None if excluded is None else as_ids(excluded))
        params = None if selection.selector is None else faiss.SearchParameters(sel=selection.selector)
        scores, ids = self.index.search(queries, min(k, limit), params=params)
        return np.where(ids >= 0, scores, EMPTY_SCORE).astype(np.float32), ids.astype(np.int64)

    def save(self, path: str) -> None:
        # Through Python's file, so that a failed write (a full disk) raises OSError: FAISS's own writer only
        # prints a failed close, and a cut file would be renamed into place.
        def body(write: files.Write) -> None:
            writer = faiss.PyCallbackIOWriter(write)
            faiss.write_index(self.index, writer)
            del writer  # flushes what FAISS buffered

        files.write_atomic(path, MARKER, body)

    @classmethod
    def load(cls, path: str, dim: int, fetch: Fetch | None = None) -> FlatIndex:
        marker, length = files.checked_payload(path)
        if marker != MARKER:
            raise ValueError("the file is not an exact index (another engine wrote it)")
        try:
            with open(path, "rb") as f:
                left = length

                def read(n: int) -> bytes:
                    nonlocal left
                    data = f.read(min(n, left))
                    left -= len(data)
                    return data

                index = faiss.read_index(faiss.PyCallbackIOReader(read))
        except OSError as exc:
            raise ValueError(f"unreadable index file: {exc.strerror or exc}") from None
        except RuntimeError as exc:
            raise ValueError(f"unreadable FAISS index: {first_line(exc)}") from None
        if index.d != dim or not isinstance(index, faiss.IndexIDMap2):
            raise ValueError(f"the file is not an id-mapped exact index of dimension {dim}")
        return cls(dim, index)

    def stats(self) -> IndexStats:
        return IndexStats(kind=self.kind, size=self.size, built_at=None, expected_recall=1.0, tail=0, removed=0)


def search_ids(queries: np.ndarray, ids: np.ndarray, fetch: Fetch, k: int,
               excluded: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact search over exactly these ``ids`` (less ``excluded``), their vectors read through ``fetch``:
    for filters that select few ids, and for queries that ask for exact results whatever the engine."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2:
        raise ValueError(f"queries must have shape (m, dim), got {queries.shape}")
    ids = np.unique(as_ids(ids))
    if excluded is not None:
        ids = np.setdiff1d(ids, as_ids(excluded), assume_unique=False)
    if k <= 0 or ids.size == 0:
        return empty_result(queries.shape[0])
    return exact_search(queries, ids, fetch, min(k, ids.size))
