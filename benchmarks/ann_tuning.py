"""Approximate index candidates compared on clustered 1024-d vectors: recall@10, latency, build time, bytes.

Every candidate is searched the way ``bindsearch.ann`` searches: the compact codes give the best
``R`` candidates of one query at a time, whose full-precision vectors are then fetched (here from an
array in RAM, as a memory-mapped vector store in the page cache would give them) and re-ranked exactly.
Recall@10 is against brute force over the same vectors.

Prints one JSON object per (candidate, search setting):

    python benchmarks/ann_tuning.py --n 100000 --kinds ivf-rabitq ivf-rabitq-fs ivf-sq8 ivf-pq4fs \
        --nlist-factor 1 --nprobe 16 --rerank 200
    python benchmarks/ann_tuning.py --n 100000 --kinds ivf-rabitq --nlist-factor 1 2 4 --nprobe 4 8 16 32
    python benchmarks/ann_tuning.py --n 200000 300000 --kinds ivf-rabitq --nlist-factor 1 \
        --nprobe 8 12 16 24 32 --rerank 50 100 --train-per-list 40
    python benchmarks/ann_tuning.py --n 50000 100000 --kinds hnsw-sq8 --ef 64 --rerank 100 --queries 100
    python benchmarks/ann_tuning.py --n 10000 20000 50000 --kinds flat
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time

import faiss
import numpy as np
from clustered import CHUNK, ClusteredVectors, exact_top_k, recall_at_k
from common import machine

K = 10

# Codes per kind, as FAISS factory strings after "IVF{nlist},"; code size in bytes at 1024 dims in comments.
CODES = {
    "ivf-pq4fs": "PQ{m}x4fs",  # m/2 bytes: 4-bit PQ scanned with SIMD lookups
    "ivf-pq8": "PQ{m}",  # m bytes: 8-bit PQ
    "ivf-rabitq": "RaBitQ",  # dim/8 + 8 bytes: one bit a dimension
    "ivf-rabitq-fs": "RaBitQfs",  # the same codes, scanned 32 at a time with SIMD lookups
    "ivf-rabitq2": "RaBitQ2",  # two bits a dimension
    "ivf-sq8": "SQ8",  # dim bytes
    "ivf-fp16": "SQfp16",  # 2 * dim bytes
}


def build_ivf(kind: str, base: np.ndarray, nlist: int, m: int, train_size: int) -> tuple[object, float]:
    """An IVF index of ``base``, trained on a sample and filled a chunk at a time; (index, seconds)."""
    started = time.perf_counter()
    index = faiss.index_factory(base.shape[1], f"IVF{nlist}," + CODES[kind].format(m=m), faiss.METRIC_INNER_PRODUCT)
    index.train(sample(base, train_size))
    for start in range(0, len(base), CHUNK):
        block = base[start : start + CHUNK]
        index.add_with_ids(block, np.arange(start, start + len(block), dtype=np.int64))
    return index, time.perf_counter() - started


def build_hnsw(base: np.ndarray, m: int, ef_construction: int) -> tuple[object, float]:
    started = time.perf_counter()
    index = faiss.IndexHNSWSQ(base.shape[1], faiss.ScalarQuantizer.QT_8bit, m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.train(sample(base, 50_000))
    for start in range(0, len(base), CHUNK):
        index.add(base[start : start + CHUNK])
    return index, time.perf_counter() - started


def sample(base: np.ndarray, size: int) -> np.ndarray:
    """``size`` rows spread evenly over ``base`` (a build that streams takes them from every chunk)."""
    return base[np.linspace(0, len(base) - 1, min(size, len(base))).astype(np.int64)]


def serialized_bytes(index: object) -> int:
    out = io.BytesIO()
    faiss.write_index(index, faiss.PyCallbackIOWriter(out.write))
    return out.tell()


def search_one(index: object, base: np.ndarray, query: np.ndarray, rerank: int, params: object) -> np.ndarray:
    """Top-K ids of one query: the ``rerank`` best by the codes, re-ranked by exact inner products."""
    _, found = index.search(query[None, :], rerank, params=params)
    found = found[0][found[0] >= 0]
    exact = np.einsum("ij,j->i", base[found], query)  # as the engine scores: no BLAS threads left spinning
    return found[np.argsort(-exact)[:K]]


def measure(index: object, base: np.ndarray, queries: np.ndarray, truth: np.ndarray, rerank: int,
            params: object) -> tuple[float, float, float]:
    """(recall@10, p50 ms, p95 ms) of single-query searches."""
    found, times = np.full((len(queries), K), -1, np.int64), []
    for i, query in enumerate(queries):
        started = time.perf_counter()
        top = search_one(index, base, query, rerank, params)
        times.append(time.perf_counter() - started)
        found[i, : len(top)] = top
    times.sort()
    return recall_at_k(found, truth), 1000 * times[len(times) // 2], 1000 * times[int(0.95 * len(times))]


def flat_latency(base: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict:
    """Exact search of one query at a time in an ``IndexFlatIP``, the engine below the approximate one's size."""
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    found, times = np.zeros((len(queries), K), np.int64), []
    for i, query in enumerate(queries):
        started = time.perf_counter()
        found[i] = index.search(query[None, :], K)[1][0]
        times.append(time.perf_counter() - started)
    times.sort()
    return {"recall_at_10": recall_at_k(found, truth), "p50_ms": round(1000 * times[len(times) // 2], 2),
            "p95_ms": round(1000 * times[int(0.95 * len(times))], 2), "build_s": 0.0,
            "bytes_per_vector": round(serialized_bytes(index) / len(base), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000])
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--kinds", nargs="+", default=["ivf-pq4fs", "ivf-rabitq", "ivf-sq8"])
    parser.add_argument("--nlist-factor", type=float, nargs="+", default=[2.0], help="nlist = factor * sqrt(n)")
    parser.add_argument("--m", type=int, nargs="+", default=[128], help="PQ sub-quantizers")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--rerank", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--train-per-list", type=int, default=64, help="training sample = this * nlist")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--qb", type=int, default=4,
                        help="RaBitQ: bits a query is quantised to (0, float, was 100x slower)")
    args = parser.parse_args()

    for n in args.n:
        data = ClusteredVectors(dim=args.dim)
        base = data.vectors(n)
        queries = data.queries(args.queries)
        truth = exact_top_k(base, queries, K)
        common = {"benchmark": "ann_tuning", "machine": machine(), "threads": faiss.omp_get_max_threads(),
                  "n": n, "dim": args.dim, "queries": args.queries}
        for kind in args.kinds:
            if kind == "flat":
                print(json.dumps({**common, "kind": kind, **flat_latency(base, queries, truth)}), flush=True)
                continue
            if kind == "hnsw-sq8":
                index, build_s = build_hnsw(base, args.hnsw_m, 40)
                size = serialized_bytes(index)
                for ef in args.ef:
                    for rerank in args.rerank:
                        params = faiss.SearchParametersHNSW(efSearch=max(ef, rerank))
                        recall, p50, p95 = measure(index, base, queries, truth, rerank, params)
                        print(json.dumps({**common, "kind": kind, "M": args.hnsw_m, "ef": max(ef, rerank),
                                          "rerank": rerank, "recall_at_10": round(recall, 4),
                                          "p50_ms": round(p50, 2), "p95_ms": round(p95, 2),
                                          "build_s": round(build_s, 1), "bytes_per_vector": round(size / n, 1)}),
                              flush=True)
                continue
            for factor in args.nlist_factor:
                nlist = max(16, round(factor * math.sqrt(n)))
                for m in args.m if kind.startswith("ivf-pq") else [0]:
                    index, build_s = build_ivf(kind, base, nlist, m, args.train_per_list * nlist)
                    size = serialized_bytes(index)
                    for nprobe in args.nprobe:
                        for rerank in args.rerank:
                            params = (faiss.IVFRaBitQSearchParameters(nprobe=nprobe, qb=args.qb)
                                      if "rabitq" in kind and "fs" not in kind
                                      else faiss.SearchParametersIVF(nprobe=nprobe))
                            recall, p50, p95 = measure(index, base, queries, truth, rerank, params)
                            print(json.dumps({**common, "kind": kind, "nlist": nlist, "m": m or None,
                                              "nprobe": nprobe, "rerank": rerank, "qb": args.qb,
                                              "train_per_list": args.train_per_list,
                                              "recall_at_10": round(recall, 4),
                                              "p50_ms": round(p50, 2), "p95_ms": round(p95, 2),
                                              "build_s": round(build_s, 1),
                                              "bytes_per_vector": round(size / n, 1)}), flush=True)
                    del index


if __name__ == "__main__":
    main()
