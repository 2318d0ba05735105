"""The few numeric steps every engine shares: best-k selection, merging result lists, exact re-ranking.

Results are (scores (m, k), ids (m, k)) pairs, best first; an empty slot has id -1 and score -inf, so that
it sorts after every real one.
"""

from __future__ import annotations

import numpy as np

from .base import Fetch, fetched

EMPTY_SCORE = np.float32(-np.inf)


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (score, id) of each row of (m, n) arrays, best first, padded with empty slots when a row
    has fewer than ``k`` real ones. Slots whose id is -1 never count as real."""
    if scores.shape != ids.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and ids {ids.shape} must be the same (m, n) shape")
    m, n = scores.shape
    scores = np.where(ids >= 0, scores, EMPTY_SCORE).astype(np.float32, copy=False)
    if n > k:
        keep = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        scores, ids = np.take_along_axis(scores, keep, axis=1), np.take_along_axis(ids, keep, axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")
    scores, ids = np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)
    ids = np.where(scores == EMPTY_SCORE, -1, ids)
    if n < k:
        scores = np.concatenate([scores, np.full((m, k - n), EMPTY_SCORE, np.float32)], axis=1)
        ids = np.concatenate([ids, np.full((m, k - n), -1, np.int64)], axis=1)
    return scores, ids.astype(np.int64, copy=False)


def merge_top_k(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of several result lists of the same queries, whose ids do not overlap."""
    scores = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    return top_k(scores, ids, k)


def exact_scores(queries: np.ndarray, candidates: np.ndarray, fetch: Fetch) -> np.ndarray:
    """Exact inner products (m, r) of each query with its candidates (m, r) ids (-1: none, score -inf).

    Each distinct id is fetched once, in ascending order (kind to a memory-mapped store). The products are
    an einsum, not BLAS: a threaded BLAS leaves its threads spinning after a small product, and they slow
    the FAISS search that follows.
    """
    m, dim = queries.shape
    if candidates.shape[0] != m:
        raise ValueError(f"{candidates.shape[0]} rows of candidates for {m} queries")
    present = candidates >= 0
    unique, inverse = np.unique(candidates[present], return_inverse=True)
    vectors = fetched(fetch, unique, dim)
    rows = np.nonzero(present)[0]
    scores = np.full(candidates.shape, EMPTY_SCORE, np.float32)
    scores[present] = np.einsum("ij,ij->i", vectors[inverse], queries[rows])
    return scores


def exact_search(queries: np.ndarray, ids: np.ndarray, fetch: Fetch, k: int,
                 block: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``k`` best of the given ``ids`` for each query, their vectors fetched ``block`` at a time
    (so that memory stays at one block whatever the number of ids); padded with empty slots."""
    m, dim = queries.shape
    best = (np.full((m, 0), EMPTY_SCORE, np.float32), np.full((m, 0), -1, np.int64))
    ids = np.sort(np.asarray(ids, dtype=np.int64).reshape(-1))
    for start in range(0, ids.size, block):
        part = ids[start : start + block]
        vectors = fetched(fetch, part, dim)
        scores = np.einsum("ij,mj->mi", vectors, queries).astype(np.float32, copy=False)
        best = merge_top_k([best, (scores, np.broadcast_to(part, scores.shape))], k)
    return top_k(*best, k) if best[0].shape[1] != k else best


def spread(n: int, size: int) -> np.ndarray:
    """``size`` positions spread evenly over ``range(n)`` (all of them when n <= size): a deterministic sample."""
    if n <= size:
        return np.arange(n, dtype=np.int64)
    return np.linspace(0, n - 1, size).round().astype(np.int64)
