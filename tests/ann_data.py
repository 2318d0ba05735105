"""Vectors for the index engine tests: clustered like real embeddings, and a store that serves them by id."""

from __future__ import annotations

import sys

import numpy as np
from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from clustered import ClusteredVectors, exact_top_k, recall_at_k

sys.path.pop(0)

__all__ = ["ArrayStore", "ClusteredVectors", "clustered", "exact_top_k", "recall_at_k"]


class ArrayStore:
    """Full-precision vectors under arbitrary int64 ids, read back by id as a vector store would; it counts
    what it is asked for, so that a test can tell how much a build reads at once."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        order = np.argsort(ids)
        self.sorted_ids, self.rows = ids[order], vectors[order]
        self.largest_fetch = 0
        self.fetched = 0

    def put(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Store (or replace) vectors under ids."""
        keep = ~np.isin(self.sorted_ids, ids)
        all_ids = np.concatenate([self.sorted_ids[keep], ids])
        all_rows = np.concatenate([self.rows[keep], vectors])
        order = np.argsort(all_ids)
        self.sorted_ids, self.rows = all_ids[order], all_rows[order]

    def fetch(self, ids: np.ndarray) -> np.ndarray:
        at = np.searchsorted(self.sorted_ids, ids)
        if ids.size and (at.max() >= self.sorted_ids.size or not np.array_equal(self.sorted_ids[at], ids)):
            raise KeyError("an id that is not in the store was fetched")
        self.largest_fetch = max(self.largest_fetch, int(ids.size))
        self.fetched += int(ids.size)
        return self.rows[at]


def clustered(n: int, dim: int, queries: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n stored vectors, held-out queries) from the clustered benchmark generator."""
    data = ClusteredVectors(dim=dim, clusters=200, seed=seed)
    return data.vectors(n), data.queries(queries)


def brute_force(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int,
                allowed: np.ndarray | None = None, excluded: np.ndarray | None = None) -> np.ndarray:
    """The exact top-k ids per query among ``allowed`` less ``excluded``: the reference every engine meets."""
    keep = np.ones(ids.size, dtype=bool)
    if allowed is not None:
        keep &= np.isin(ids, allowed)
    if excluded is not None:
        keep &= ~np.isin(ids, excluded)
    top = exact_top_k(vectors[keep], queries, min(k, int(keep.sum())))
    return ids[keep][top]
