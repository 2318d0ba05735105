"""Exact flat FAISS (``IndexFlatIP``) on the scale benchmark's vectors, in a process of its own.

    scale_faiss_child.py query --vectors V.npy --queries Q.npy --truth T.npy

The reference every index is held against: the same vectors in one flat inner-product index,
searched one query at a time with FAISS's default threads (as bindsearch's own index is).
Prints one JSON object: build time, threads, p50/p95, recall@10 and memory.
"""

from __future__ import annotations

import argparse
import json
import time

import faiss
import numpy as np
from peers.measure import query_run, rows
from scale_data import K


def flat_index(vectors: str) -> faiss.IndexFlatIP:
    dim = np.load(vectors, mmap_mode="r").shape[1]
    index = faiss.IndexFlatIP(dim)
    for _, block in rows(vectors):
        index.add(block)
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("query",))
    parser.add_argument("--vectors", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--truth", required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    index = flat_index(args.vectors)
    build_s = time.perf_counter() - started

    def search(query: np.ndarray) -> np.ndarray:
        return index.search(query[None], K)[1][0]

    out = query_run(search, np.load(args.queries), np.load(args.truth), started_at=None)
    print(json.dumps({"build_s": round(build_s, 2), "threads": faiss.omp_get_max_threads(), **out}), flush=True)


if __name__ == "__main__":
    main()
