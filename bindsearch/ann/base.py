"""The interface every vector index engine implements, and the argument checks they share.

Labels are int64 ids that stay with a vector for its life (the library's item ids or window ids),
never positions. Vectors are unit rows, so inner product is cosine. Engines that keep only compact
codes get the full-precision vectors back through a ``Fetch`` callback (the vector store) to score
what they return exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Fetch = Callable[[np.ndarray], np.ndarray]
"""ids (n,) int64 -> their full-precision unit vectors (n, dim) float32, in the same order."""


@dataclass(frozen=True)
class IndexStats:
    """What an index holds and how far it has drifted from its last build."""

    kind: str
    size: int  # live vectors
    built_at: float | None  # unix time of the last build; None for an index never built (an exact one)
    expected_recall: float | None  # recall@10 against exact search; 1.0 for an exact index
    tail: int  # vectors added since the last build, searched exactly
    removed: int  # vectors removed since the last build, still in its codes but never returned


class VectorIndex(ABC):
    """Inner-product search over unit vectors keyed by stable int64 ids."""

    kind: str
    dim: int

    @property
    @abstractmethod
    def size(self) -> int:
        """The number of live vectors."""

    @abstractmethod
    def ids(self) -> np.ndarray:
        """Every live id, int64, in no particular order."""

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors (n, dim) under ``ids`` (n,); an id already present gets the new vector."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> None:
        """Remove these ids; ids not present are ignored."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               excluded: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores (m, k'), ids (m, k')) per query row, best first, id -1 in slots with nothing to give;
        k' = min(k, live vectors, live ``allowed`` ones).

        With ``allowed``, only those ids are ranked, and the k best of them come back whenever k of them
        are live; ``excluded`` ids are never returned. Scores are exact inner products.
        """

    @abstractmethod
    def save(self, path: str) -> None:
        """Write atomically (a temporary file in the same folder, flushed, renamed), ending with a checksum."""

    @classmethod
    @abstractmethod
    def load(cls, path: str, dim: int, fetch: Fetch | None) -> VectorIndex:
        """Read what ``save`` wrote; ValueError (one line) if it is unreadable, damaged or of another
        dimension."""

    @abstractmethod
    def stats(self) -> IndexStats:
        """Kind, size and drift since the last build."""


def as_ids(ids: np.ndarray | list[int]) -> np.ndarray:
    """Ids as a flat contiguous int64 array."""
    return np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)


def as_vectors(vectors: np.ndarray, n: int, dim: int) -> np.ndarray:
    """Vectors as contiguous float32 (n, dim); ValueError naming both shapes otherwise."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.shape != (n, dim):
        raise ValueError(f"expected vectors of shape {(n, dim)}, got {vectors.shape}")
    return vectors


def as_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    """Queries as contiguous float32 (m, dim); ValueError otherwise."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"queries must have shape (m, {dim}), got {queries.shape}")
    return queries


def check_distinct(ids: np.ndarray) -> None:
    """ValueError if an id appears twice in one call: which of its vectors to keep would be a guess."""
    if ids.size > 1 and np.unique(ids).size != ids.size:
        raise ValueError("the same id appears more than once in one add")


def fetched(fetch: Fetch, ids: np.ndarray, dim: int) -> np.ndarray:
    """``fetch(ids)``, checked: a vector store that answers with the wrong shape is named, not searched."""
    vectors = np.ascontiguousarray(fetch(ids), dtype=np.float32)
    if vectors.shape != (ids.size, dim):
        raise ValueError(f"the vector store gave vectors of shape {vectors.shape} for {ids.size} ids "
                         f"of dimension {dim}")
    return vectors


def empty_result(m: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((m, 0), np.float32), np.zeros((m, 0), np.int64)

