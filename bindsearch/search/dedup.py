"""Collapsing near-duplicate results: keep the best of each group of look-alikes."""

from __future__ import annotations

import numpy as np

from .calibration import dot_rows


def keep_distinct(vectors: np.ndarray, threshold: float) -> list[int]:
    """Positions of the rows to keep, in order: a row goes when its cosine with a row kept before it is >= threshold.

    ``vectors`` (n, d) are unit rows, best result first, so each group of
    near-duplicates keeps its best member.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"expected an (n, d) matrix of unit rows, got shape {vectors.shape}")
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"a cosine threshold lies in [-1, 1], got {threshold}")
    kept: list[int] = []
    for i in range(vectors.shape[0]):
        with np.errstate(over="ignore", invalid="ignore"):
            similar = dot_rows(vectors[kept], vectors[i]) >= threshold  # NaN is like nothing
        if not similar.any():
            kept.append(i)
    return kept
