"""Every tuned number of the engines, and where it comes from.

Measured with ``benchmarks/ann_tuning.py`` on clustered 1024-d unit vectors (``benchmarks/clustered.py``),
200 queries, one query at a time, on 2 shared AMD EPYC cores (results in
``benchmarks/results/ann_tuning-*-cpu2.jsonl``). Recall is recall@10 against brute force after the exact
re-rank of the best ``rerank`` candidates.

- Flat (exact) search reads every vector for every query: about 0.29 us per 1024-d vector (285-292 ms at
  1M), so 10 000 vectors (40 MB) cost about 3 ms; above that the approximate engine is faster.
- IVF with 1-bit RaBitQ codes (136 bytes a vector at 1024 dims, plus 4 KB a list for its centroid) won:
  at 100k, nlist 316, nprobe 8, rerank 50: recall 0.9955 at 1.3 ms p50, built in 6 s, 157 B/vector.
  Against it: 8-bit PQ64 (0.93 recall at rerank 100, 167 s to build: PQ training), 4-bit fast-scan PQ128
  (0.90), SQ8 (same recall, 5-12 ms: 1 KB codes to scan), fast-scan RaBitQ (same recall, slower on 2
  shared cores), HNSW over SQ8 (graph build far too slow at 1M on 2 cores, 1 KB codes plus the graph).
- nlist = sqrt(n): recall depends on the share of lists probed, and 2 or 4 sqrt(n) lists bought no
  latency at 100k-200k for 2.4x and 7x the build time (k-means cost grows with nlist squared).
  The probed share for recall >= 0.995 stayed near 1/32: 100k nprobe 8/316 0.9955; 200k 12/447 0.996;
  300k 16/548 0.9975 (rerank 100). Hence nprobe = nlist / 32 (at least 8): 32 of 1000 lists at 1M,
  32 000 codes scanned, expected recall about 0.995.
- rerank 100 rather than 50: at 300k, nprobe 12, 0.9955 against 0.9935 for 0.1 ms more.
- qb 4: RaBitQ quantises the query to 4 bits; a float query (qb 0) was 100x slower for no recall.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# Flat below this many bytes of vectors (10 240 at 1024 dims, 81 920 at 128).
EXACT_BYTES = 40 << 20
# An approximate index shrunk below half the exact limit goes back to flat; the gap keeps a library near the
# limit from flipping between engines at every change.
BACK_TO_FLAT = 0.5

# The tail (vectors added since the build, searched exactly) asks for a rebuild past this share of the built
# vectors or past the exact limit, whichever is smaller: beyond it, scanning the tail costs more than the
# approximate search itself. Tombstones ask for one past this share of the built vectors: each is a code
# scanned for nothing.
TAIL_SHARE = 0.1
REMOVED_SHARE = 0.1

# Filters: ``allowed`` sets of at most this many live ids are scanned exactly through the vector store
# (their vectors read whole: 1024 ids at 1024 dims) rather than searched in the codes.
EXACT_FILTER_BYTES = 4 << 20

TRAIN_PER_LIST = 40  # k-means sample per list: FAISS asks for 39 at least
PROBE_SHARE = 1 / 32
MIN_NPROBE = 16
RERANK = 200
RERANK_PER_HIT = 20  # for k above 10, re-rank 20k candidates
QUERY_BITS = 4
RECALL_PROBES = 100  # stored vectors whose exact neighbours a build tracks to measure its recall


@dataclass(frozen=True)
class IvfParams:
    """How an IVF-RaBitQ index is built and searched."""

    nlist: int
    nprobe: int
    rerank: int
    qb: int
    train_size: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> IvfParams:
        params = cls(**{name: int(data[name]) for name in ("nlist", "nprobe", "rerank", "qb", "train_size")})
        if params.nlist < 1 or not 1 <= params.nprobe <= params.nlist or params.rerank < 1:
            raise ValueError(f"unusable index parameters {data}")
        return params


def exact_limit(dim: int) -> int:
    """The most vectors of ``dim`` dimensions searched exactly."""
    return max(1, EXACT_BYTES // (4 * dim))


def exact_filter_limit(dim: int) -> int:
    return max(1, EXACT_FILTER_BYTES // (4 * dim))


def ivf_params(n: int) -> IvfParams:
    """The parameters for ``n`` vectors."""
    nlist = max(1, round(math.sqrt(n)))
    nprobe = min(nlist, max(MIN_NPROBE, math.ceil(nlist * PROBE_SHARE)))
    return IvfParams(nlist=nlist, nprobe=nprobe, rerank=RERANK, qb=QUERY_BITS,
                     train_size=min(n, TRAIN_PER_LIST * nlist))


def rerank_size(params: IvfParams, k: int) -> int:
    return max(params.rerank, RERANK_PER_HIT * k)
