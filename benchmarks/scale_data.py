"""The scale benchmark's data: clustered vectors written once per size, and their exact top-k.

One pass over ``ClusteredVectors.chunks(n)`` writes the vectors to a ``.npy`` (which every
system reads), streams them into a ``.npz`` shaped like ``bindsearch export``'s (which
bindsearch imports), and keeps the exact top-k of the queries: at 1M x 1024 the vectors
are 4 GB, so no step holds more than one chunk of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from clustered import ClusteredVectors

from bindsearch.npz_stream import ArrayStream, NpzArchive

K = 10
MODALITY = "image"


def item_path(position: int) -> str:
    """The path bindsearch stores for the vector at ``position``: the position can be read back from it."""
    return f"/bench/{position:08d}"


def position_of(path: str) -> int:
    """The position in the vector file of the item stored under ``path`` (see ``item_path``)."""
    return int(path.rsplit("/", 1)[1])


# -- exact top-k, a chunk at a time ----------------------------------------------------


def empty_top_k(m: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of ``m`` queries that have seen nothing yet: -inf scores, id -1."""
    return np.full((m, k), -np.inf, dtype=np.float32), np.full((m, k), -1, dtype=np.int64)


def merge_top_k(best: tuple[np.ndarray, np.ndarray], scores: np.ndarray, first_id: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """The top-k (scores, ids) per query of ``best`` and a new block of ``scores`` (m, c), whose
    columns are ids ``first_id`` ... ``first_id + c - 1``; best first."""
    best_scores, best_ids = best
    m, k = best_scores.shape
    if best_ids.shape != (m, k) or scores.ndim != 2 or scores.shape[0] != m:
        raise ValueError(f"cannot merge scores {scores.shape} into a top-k of {best_scores.shape}")
    c = scores.shape[1]
    if c > k:  # only the block's own top k can enter
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        block_scores, block_ids = np.take_along_axis(scores, top, axis=1), top + first_id
    else:
        block_scores, block_ids = scores, np.broadcast_to(np.arange(c) + first_id, (m, c))
    all_scores = np.concatenate([best_scores, block_scores.astype(np.float32)], axis=1)
    all_ids = np.concatenate([best_ids, block_ids.astype(np.int64)], axis=1)
    order = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(all_scores, order, axis=1), np.take_along_axis(all_ids, order, axis=1)


# -- arrays written a block of rows at a time ----------------------------------------


@contextmanager
def npy_file(path: Path, dtype: np.dtype | str, shape: tuple[int, ...]) -> Iterator[ArrayStream]:
    """A ``.npy`` file written row block by row block; it must be full when the block ends."""
    with open(path, "wb") as f:
        stream = ArrayStream(f, dtype, shape)
        yield stream
        stream.check_full()


# -- one size's files ------------------------------------------------------------------


@dataclass(frozen=True)
class SizeData:
    """The files of one size: vectors (n, dim) float32, queries (m, dim), exact top-k ids (m, K), and
    the import file."""

    n: int
    dim: int
    vectors: Path
    queries: Path
    truth: Path
    import_file: Path


def write_size(folder: Path, n: int, dim: int, queries: int, space: str, fingerprint: str,
               seed: int = 0) -> SizeData:
    """Write the files of ``n`` clustered vectors into ``folder``; ``space`` and ``fingerprint`` are
    recorded in the import file, as an export of a library of that space records them."""
    folder.mkdir(parents=True, exist_ok=True)
    data = ClusteredVectors(dim=dim, seed=seed)
    query_vectors = data.queries(queries)
    best = empty_top_k(queries, min(K, n))
    out = SizeData(n, dim, folder / "vectors.npy", folder / "queries.npy", folder / "truth.npy",
                   folder / "import.npz")
    with npy_file(out.vectors, np.float32, (n, dim)) as vectors, NpzArchive(out.import_file) as npz:
        with npz.member("vector", np.float32, (n, dim)) as member:
            for start, block in data.chunks(n):
                vectors.write(block)
                member.write(block)
                best = merge_top_k(best, query_vectors @ block.T, start)
        width = len(item_path(max(n - 1, 0)))
        with npz.member("path", f"<U{width}", (n,)) as member:
            for start in range(0, n, 100_000):
                member.write(np.array([item_path(i) for i in range(start, min(n, start + 100_000))]))
        npz.whole("modality", np.full(n, MODALITY))
        npz.whole("tags", np.full(n, json.dumps([])))
        npz.whole("space", np.array(space))
        npz.whole("fingerprint", np.array(fingerprint))
    np.save(out.queries, query_vectors)
    np.save(out.truth, best[1])
    return out
