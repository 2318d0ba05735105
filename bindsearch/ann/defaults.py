"""Every tuned number of the engines, and where it comes from.

Measured with ``benchmarks/ann_tuning.py`` (raw candidates: one query at a time, the best ``rerank`` by
the codes re-ranked exactly) and ``benchmarks/ann_engine.py`` (the engines end to end) on the clustered
1024-d unit vectors of ``benchmarks/clustered.py``, 100-200 queries, on 2 shared cores (results in
``benchmarks/results/ann_*-cpu2.jsonl``; latencies taken while other jobs ran vary up to 3x).
Recall is recall@10 against brute force.

- Flat (exact) search reads every vector for every query: 285-292 ms at 1M x 1024, about 0.29 us a
  vector, so 10 240 vectors (40 MiB) cost about 3 ms; above that the approximate engine is faster.
- The approximate engine is IVF with RaBitQ codes, 1 bit a dimension at 1024 dims and more below (see
  ``code_bits``); at 1 bit, 136 bytes a 1024-d vector (157-165 bytes a
  vector in all, with ids and centroids). At 100k, nlist 316, nprobe 16, rerank 200: recall 0.9995 at
  1.0 ms, trained in 2.4 s. Against it, same lists and search: SQ8, same recall at 7.3 ms (1 KB codes to
  scan); 8-bit PQ64, 0.9685 and 109 s to train; 4-bit fast-scan PQ128, 0.887; fast-scan RaBitQ, same
  recall and speed when the cores are free but 8 ms against 1.3 ms while other jobs ran. HNSW over SQ8
  (M 32): 0.997 at 0.9 ms but 1 296 bytes a vector (1.3 GB at 1M, most of a 1.5 GB query process), 31 s
  to build 100k (6 min or more at 1M), and no way to delete. RaBitQ's codes leave little to memory-map:
  the engine keeps them in RAM.
- nlist = sqrt(n): 2 and 4 sqrt(n) lists gave the same recall for the same share of codes scanned (100k:
  0.996 and 0.999 against 0.9955-0.999) for 2.4x and 7x the build time (k-means grows with nlist^2).
- nprobe = nlist / 32, at least 32. The share of lists probed for recall >= 0.995 stayed near 1/32 from
  100k to 300k (100k 8/316 0.9955; 200k 12/447 0.996; 300k 16/548 0.9975 at rerank 100), while small
  indexes need more: 20k (141 lists) gave 0.975 at 16 probes, 0.9905 at 32 (rerank 200), and 32 probes
  cost at most 0.5 ms more than 16 up to 300k. At 1M: 32 of 1000 lists, 32 000 codes scanned.
- rerank 200: the 1-bit codes, not the lists, limit recall on small indexes (20k, every list probed:
  0.9825 at rerank 100, 0.989 at 200, 0.993 at 300); 200 vectors fetched cost about 0.1 ms.
- qb 4: RaBitQ quantises the query to 4 bits; a float query (qb 0) was 100x slower, 8 bits no better.
- End to end (filters, tail, Python), nlist sqrt(n), these defaults: 100k 2.5 ms p50, recall 0.9995;
  200k 4.0 ms, 0.9985; 300k 4.2 ms, 0.999; built in 3.5, 6.5 and 11 s.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace

from ..errors import UsageError

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

# Filters: ``allowed`` sets whose vectors come to at most this many bytes (1024 ids at 1024 dims) are scanned
# exactly through the vector store rather than searched in the codes. At 200k x 1024: 1000 ids 1.2 ms exact
# against 3.2 ms in the codes, 2000 ids 4.0 against 3.6 ms.
EXACT_FILTER_BYTES = 4 << 20

TRAIN_PER_LIST = 40  # k-means sample per list: FAISS asks for 39 at least (and prints a warning otherwise)
MIN_PER_LIST = 39  # so that small indexes get fewer lists rather than too small a sample
PROBE_SHARE = 1 / 32
MIN_NPROBE = 32
RERANK = 200
RERANK_PER_HIT = 20  # for k above 10, re-rank 20k candidates
QUERY_BITS = 4
MAX_CODE_BITS = 4  # below 1024 dimensions the codes get up to this many bits a dimension
RECALL_PROBES = 100  # stored vectors whose exact neighbours a build tracks to measure its recall
# A build whose probes reach less than this recall@10 searches wider (``widened``) until they do, or until it
# probes every list and re-ranks MAX_RERANK candidates. Clustered embeddings reach it with the defaults
# (0.999 and more from 100k to 1M); 20k vectors uniform on the 1024-d sphere, which have no neighbours to
# speak of, gave 0.26 with them.
TARGET_RECALL = 0.98
MAX_RERANK = 1600


@dataclass(frozen=True)
class IvfParams:
    """How an IVF-RaBitQ index is built and searched."""

    nlist: int
    nprobe: int
    rerank: int
    qb: int
    train_size: int
    bits: int = 1  # per dimension of the codes (see ``code_bits``)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> IvfParams:
        params = cls(**{name: int(data[name]) for name in ("nlist", "nprobe", "rerank", "qb", "train_size")},
                     bits=int(data.get("bits", 1)))
        if params.nlist < 1 or not 1 <= params.nprobe <= params.nlist or params.rerank < 1 \
                or not 1 <= params.bits <= MAX_CODE_BITS:
            raise ValueError(f"unusable index parameters {data}")
        return params


# Overrides the exact limit (a number of vectors): more for exact search on a larger collection, fewer to
# try the approximate engine on a small one.
EXACT_LIMIT_VARIABLE = "BINDSEARCH_EXACT_LIMIT"


def exact_limit(dim: int) -> int:
    """The most vectors of ``dim`` dimensions searched exactly (``BINDSEARCH_EXACT_LIMIT`` overrides)."""
    chosen = os.environ.get(EXACT_LIMIT_VARIABLE, "").strip()
    if chosen:
        try:
            return max(1, int(chosen))
        except ValueError:
            raise UsageError(f"{EXACT_LIMIT_VARIABLE} must be a number of vectors, not {chosen!r}") from None
    return max(1, EXACT_BYTES // (4 * dim))


def exact_filter_limit(dim: int) -> int:
    return max(1, EXACT_FILTER_BYTES // (4 * dim))


def code_bits(dim: int) -> int:
    """Bits per dimension of the RaBitQ codes: 1 at 1024 dimensions and more, more for fewer, so that a code
    keeps enough to rank by. At 64 dimensions (1 500 clustered vectors, 32 of 38 lists probed, rerank 200)
    1-bit codes gave recall 0.897, 2 bits 0.992, 4 bits 0.993."""
    return max(1, min(MAX_CODE_BITS, math.ceil(1024 / dim))) if dim < 1024 else 1


def ivf_params(n: int, dim: int = 1024) -> IvfParams:
    """The parameters for ``n`` vectors of ``dim`` dimensions."""
    nlist = max(1, min(round(math.sqrt(n)), n // MIN_PER_LIST))
    nprobe = min(nlist, max(MIN_NPROBE, math.ceil(nlist * PROBE_SHARE)))
    return IvfParams(nlist=nlist, nprobe=nprobe, rerank=RERANK, qb=QUERY_BITS,
                     train_size=min(n, TRAIN_PER_LIST * nlist), bits=code_bits(dim))


def widened(params: IvfParams) -> IvfParams | None:
    """The next wider search: twice the lists probed, then (all probed) twice the candidates re-ranked; None
    when both are at their most."""
    if params.nprobe < params.nlist:
        return replace(params, nprobe=min(params.nlist, 2 * params.nprobe))
    if params.rerank < MAX_RERANK:
        return replace(params, rerank=min(MAX_RERANK, 2 * params.rerank))
    return None


def rerank_size(params: IvfParams, k: int) -> int:
    return max(params.rerank, RERANK_PER_HIT * k)
