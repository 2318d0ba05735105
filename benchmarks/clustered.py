"""Clustered unit vectors shaped like real embeddings, for scale benchmarks and approximate-search tests.

Real embeddings are not uniform on the sphere: they share a common offset (any two
images of a CLIP-like model have a cosine well above zero), crowd into clusters of
very uneven sizes (a photo library holds far more dogs than aardvarks), and each
cluster spreads along a few directions more than others. Uniform random vectors are
the easiest case for an approximate index and say little about real recall; these
are harder on purpose.

Everything is deterministic in ``seed`` and generated a chunk at a time, so 1M x 1024
vectors never need to sit in memory twice:

    from clustered import ClusteredVectors
    data = ClusteredVectors(dim=1024, seed=0)
    for start, block in data.chunks(1_000_000):   # (start, (n, dim) float32 unit rows)
        ...
    queries = data.queries(1000)                   # held-out points of the same clusters
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

CHUNK = 50_000


class ClusteredVectors:
    """A fixed mixture of anisotropic clusters; ``chunks`` and ``queries`` draw from it.

    - ``clusters`` centres, with Pareto-distributed weights (a few big clusters, many small);
    - a shared offset of norm ``offset`` added to every point before normalising;
    - each cluster spreads along ``rank`` directions of its own with decaying scales,
      plus isotropic noise (``noise``), so clusters overlap at their edges.
    """

    def __init__(self, dim: int = 1024, clusters: int = 1000, seed: int = 0, *, rank: int = 24,
                 offset: float = 1.0, spread: float = 0.8, noise: float = 0.5) -> None:
        if dim < 2 or clusters < 1 or rank < 1:
            raise ValueError("dim >= 2, clusters >= 1 and rank >= 1 are needed")
        self.dim, self.clusters, self.seed, self.rank = dim, clusters, seed, rank
        self.noise = noise
        rng = np.random.default_rng(seed)
        self.offset = (_unit(rng.standard_normal(dim)) * offset).astype(np.float32)
        self.centres = _unit(rng.standard_normal((clusters, dim))).astype(np.float32)
        weights = rng.pareto(1.2, clusters) + 1.0
        self.weights = weights / weights.sum()
        # Each cluster's own directions (rank, dim), unit length, and their scales, largest first:
        # a point's distance from its centre has a norm of about ``spread`` (times its cluster's looseness).
        self.bases = _unit(rng.standard_normal((clusters, rank, dim))).astype(np.float32)
        decay = np.exp(-np.arange(rank) / (rank / 3))
        self.scales = (spread * decay / np.sqrt(np.sum(decay**2))).astype(np.float32)
        self.looseness = (0.6 + 0.8 * rng.random(clusters)).astype(np.float32)  # some clusters are looser

    def block(self, n: int, seed: int) -> np.ndarray:
        """``n`` unit vectors (n, dim) float32, drawn with their own ``seed``."""
        rng = np.random.default_rng([self.seed, seed])
        which = rng.choice(self.clusters, size=n, p=self.weights)
        points = rng.standard_normal((n, self.dim), dtype=np.float32)
        points *= np.float32(self.noise / np.sqrt(self.dim))
        points += self.offset
        coef = rng.standard_normal((n, self.rank), dtype=np.float32) * self.scales
        order = np.argsort(which, kind="stable")
        bounds = np.flatnonzero(np.diff(which[order])) + 1
        for rows in np.split(order, bounds):  # one matrix product per cluster present
            c = which[rows[0]]
            points[rows] += self.centres[c] + (coef[rows] * self.looseness[c]) @ self.bases[c]
        return _unit(points).astype(np.float32)

    def chunks(self, n: int, chunk: int = CHUNK) -> Iterator[tuple[int, np.ndarray]]:
        """The first ``n`` vectors, as (start, block) pairs of at most ``chunk`` rows. The vectors depend on
        ``chunk`` (each block has its own seed): keep the default to compare runs."""
        for start in range(0, n, chunk):
            yield start, self.block(min(chunk, n - start), seed=1 + start // chunk)

    def vectors(self, n: int) -> np.ndarray:
        """The first ``n`` vectors in one array (for tests and small sizes)."""
        out = np.empty((n, self.dim), dtype=np.float32)
        for start, block in self.chunks(n):
            out[start : start + len(block)] = block
        return out

    def queries(self, n: int) -> np.ndarray:
        """``n`` query vectors from the same mixture, never among the stored ones (a seed of their own)."""
        return self.block(n, seed=2**31 - 1)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def exact_top_k(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ids (positions in ``base``) of the exact top-``k`` inner products per query: the recall reference."""
    scores = queries @ base.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's true top-k that ``found`` (n, >=k ids) holds."""
    k = truth.shape[1]
    hits = [len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth)]
    return float(np.mean(hits)) / k
