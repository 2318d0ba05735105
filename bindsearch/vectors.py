"""Small pure functions over embedding arrays, with shape checks.

Vectors in bindsearch are float32 rows of unit length; every function here
takes and returns numpy arrays and never touches a model or a file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_EPS = 1e-12


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Return ``x`` (shape (d,) or (n, d)) with every row scaled to unit L2 norm, as float32.

    A zero row stays zero rather than becoming NaN.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (1, 2):
        raise ValueError(f"expected a vector or a matrix of row vectors, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, _EPS)).astype(np.float32, copy=False)


def usable_rows(x: np.ndarray) -> np.ndarray:
    """Which rows of ``x`` (shape (n, d)) can be stored and searched: every value finite, norm not zero.

    A row that fails is what a model gives for input far outside what it was
    trained on (NaN after an overflow, or nothing at all): it would turn every
    score it takes part in into NaN.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a matrix of row vectors, got shape {x.shape}")
    finite = np.isfinite(x).all(axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.linalg.norm(np.where(finite[:, None], x, 0), axis=1)
    return finite & (norms > _EPS) & np.isfinite(norms)


def is_usable(vector: np.ndarray) -> bool:
    """One vector (any shape, read flat) that ``usable_rows`` would keep."""
    return bool(usable_rows(np.asarray(vector).reshape(1, -1))[0])


def combine(vectors: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted sum of individually normalised vectors, normalised again: shape (d,).

    Each term is normalised first so that no modality's scale drowns the others,
    and the sum is normalised so that scores stay cosine similarities.
    """
    if len(vectors) == 0:
        raise ValueError("combine() needs at least one vector")
    if len(vectors) != len(weights):
        raise ValueError(f"{len(vectors)} vectors but {len(weights)} weights")
    dims = {np.asarray(v).size for v in vectors}
    if len(dims) != 1:
        raise ValueError(f"vectors of different sizes cannot be combined: {sorted(dims)}")
    with np.errstate(over="ignore"):  # a weight too large for float32 becomes inf, refused below
        stacked = np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for v in vectors])
        w = np.asarray(weights, dtype=np.float32).reshape(-1, 1)
    if not np.isfinite(w).all():
        raise ValueError("a weight is not a finite 32-bit float")
    if not usable_rows(stacked).all():
        raise ValueError("a query term's vector is not finite, or all zero")
    total = (l2_normalize(stacked) * w).sum(axis=0)
    if float(np.linalg.norm(total)) < 1e-6:
        raise ValueError("the weighted query terms cancel out to a zero vector")
    return l2_normalize(total)


def to_blob(vector: np.ndarray, dim: int) -> bytes:
    """Serialise one vector of ``dim`` floats as little-endian float32 bytes."""
    v = np.asarray(vector, dtype="<f4").reshape(-1)
    if v.size != dim:
        raise ValueError(f"vector has {v.size} values, expected {dim}")
    return v.tobytes()


def from_blobs(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Deserialise stored vectors into an (n, dim) float32 array."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    flat = np.frombuffer(b"".join(blobs), dtype="<f4")
    if flat.size != len(blobs) * dim:
        raise ValueError(f"stored vectors do not have {dim} values each")
    return flat.reshape(len(blobs), dim).astype(np.float32)


def evenly_spaced(n: int, size: int) -> np.ndarray:
    """``size`` positions spread evenly over ``range(n)`` (all of them when n <= size): a deterministic sample."""
    if n <= size:
        return np.arange(n, dtype=np.int64)
    return np.linspace(0, n - 1, size).round().astype(np.int64)
