"""Scale out, the Milvus half: bindsearch's own FAISS engine against ``MilvusIndex`` on Milvus Lite.

At each size, on the clustered vectors of ``scale_data.write_size`` (ids = positions, exact top-10 known):

- faiss: the engine ``bindsearch.ann.build_index`` chooses for that size (IVF-RaBitQ re-ranked from the
  vectors, flat below 10 240 vectors), built from the ``.npy``: build rate, bytes of its index file (plus
  the full vectors it reads to re-rank, which a library keeps anyway), a sweep of nprobe (recall@10 of all
  queries), and p50/p95 of one query at a time at the fastest nprobe reaching recall 0.95;
- milvus: a ``MilvusIndex`` (IVF_FLAT, 128 lists per segment) on a Milvus Lite file: import rate of
  ``add`` in 50 000-vector calls (flushes included), bytes of the Lite folder, the same sweep and latency.

Milvus Lite answers a request in time that grows with every row it holds (its search and count walk all
rows in Python), so the sweep sends the queries in blocks and the latency takes fewer queries than FAISS.
Prints one JSON object per line:

    python benchmarks/scale_out_milvus.py --sizes 200000 --dir /tmp/scale-out
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from common import machine
from peers.measure import disk_bytes
from scale import sizes
from scale_bindsearch import space_identity
from scale_data import K, SizeData, write_size

from bindsearch.ann import ApproximateIndex, build_index

TARGET = 0.95
NPROBES = (1, 2, 4, 8, 16, 32, 64, 128)
CHUNK = 50_000


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0].tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return round(hits / truth.size, 4)


def latency(search, queries: np.ndarray) -> dict:
    """p50/p95 in ms of one query at a time (after one warm-up query)."""
    search(queries[:1])
    times = []
    for row in range(queries.shape[0]):
        started = time.perf_counter()
        search(queries[row:row + 1])
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(float(np.percentile(times, 50)), 3), "p95_ms": round(float(np.percentile(times, 95)), 3),
            "latency_queries": len(times)}


def sweep(system: str, settings, search, queries: np.ndarray, truth: np.ndarray) -> tuple[list[dict], object]:
    """A recall row per setting (all queries, in one call), and the first setting reaching TARGET (or the
    last tried)."""
    rows, chosen = [], None
    for setting in settings:
        started = time.perf_counter()
        _, found = search(setting, queries)
        seconds = time.perf_counter() - started
        recall = recall_at_k(found, truth)
        rows.append({"system": system, "measure": "sweep", "nprobe": setting, "recall_at_10": recall,
                     "batch_ms_per_query": round(seconds * 1000 / queries.shape[0], 3)})
        chosen = setting
        if recall >= TARGET:
            break
    return rows, chosen


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measure_faiss_engine(data: SizeData, folder: Path, latency_queries: int = 200) -> list[dict]:
    """bindsearch's own engine at this size: build, disk, sweep, latency."""
    vectors = np.load(data.vectors, mmap_mode="r")
    queries, truth = np.load(data.queries), np.load(data.truth)
    ids = np.arange(data.n, dtype=np.int64)

    def chunks():
        for start in range(0, data.n, CHUNK):
            yield ids[start:start + CHUNK], np.asarray(vectors[start:start + CHUNK])

    def fetch(wanted: np.ndarray) -> np.ndarray:
        return np.asarray(vectors[wanted])

    started = time.perf_counter()
    index = build_index(ids, chunks, data.dim, fetch)
    build_s = time.perf_counter() - started
    path = folder / "faiss.index"
    index.save(str(path))
    rows = [{"system": "faiss", "measure": "import", "engine": index.kind, "build_s": round(build_s, 2),
             "vectors_per_s": round(data.n / build_s, 1), "peak_rss_mib": peak_rss_mib()},
            {"system": "faiss", "measure": "disk", "index_bytes": disk_bytes(str(path)),
             "vectors_bytes": disk_bytes(str(data.vectors)),
             "bytes": disk_bytes(str(path)) + disk_bytes(str(data.vectors))}]
    if isinstance(index, ApproximateIndex):
        default = index.params

        def search(nprobe, q):
            index.params = replace(default, nprobe=min(nprobe, default.nlist))
            return index.search(q, K)

        found_rows, chosen = sweep("faiss", [p for p in NPROBES if p <= default.nlist], search, queries, truth)
        rows += found_rows
        index.params = replace(default, nprobe=min(chosen, default.nlist))
        rows[0]["params"] = default.to_dict()
    else:
        chosen = None
    q = queries[:latency_queries]
    _, found = index.search(q, K)
    rows.append({"system": "faiss", "measure": "query", "nprobe": chosen,
                 "recall_at_10": recall_at_k(found, truth[:len(q)]), **latency(lambda one: index.search(one, K), q)})
    return rows


def measure_milvus_lite(data: SizeData, folder: Path, latency_queries: int = 20,
                        index_type: str = "IVF_FLAT") -> list[dict]:
    """MilvusIndex on a Milvus Lite file in ``folder``: import, disk, sweep, latency."""
    from bindsearch.ann.milvus import MilvusIndex

    vectors = np.load(data.vectors, mmap_mode="r")
    queries, truth = np.load(data.queries), np.load(data.truth)
    db = folder / "milvus.db"
    shutil.rmtree(db, ignore_errors=True)
    index = MilvusIndex(f"milvus://{db}", "image", data.dim, index_type=index_type)
    started = time.perf_counter()
    for start in range(0, data.n, CHUNK):
        stop = min(data.n, start + CHUNK)
        index.add(np.arange(start, stop, dtype=np.int64), np.asarray(vectors[start:stop]))
        print(f"scale_out milvus {stop}/{data.n} in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    import_s = time.perf_counter() - started
    # Lite builds each flushed segment's index in the background, and searches a segment without one exactly:
    # the sweep waits for every row to be indexed, so that it measures the index.
    indexed_s = wait_indexed(index, data.n)
    rows = [{"system": "milvus", "measure": "import", "engine": f"milvus-lite {index_type}",
             "build_params": index.build_params, "import_s": round(import_s, 2), "indexed_after_s": indexed_s,
             "vectors_per_s": round(data.n / import_s, 1), "size": index.size, "peak_rss_mib": peak_rss_mib()},
            {"system": "milvus", "measure": "disk", "bytes": disk_bytes(str(db))}]
    if index_type == "IVF_FLAT":
        def search(nprobe, q):
            index.search_params = {"nprobe": nprobe}
            return index.search(q, K)

        nlist = index.build_params["nlist"]
        found_rows, chosen = sweep("milvus", [p for p in NPROBES if p <= nlist], search, queries, truth)
        rows += found_rows
        index.search_params = {"nprobe": chosen}
    else:
        chosen = None
    q = queries[:latency_queries]
    _, found = index.search(q, K)
    rows.append({"system": "milvus", "measure": "query", "nprobe": chosen,
                 "recall_at_10": recall_at_k(found, truth[:len(q)]), **latency(lambda one: index.search(one, K), q),
                 "peak_rss_mib": peak_rss_mib()})
    rows += filter_paths(index, queries[:3])
    index.close()
    return rows


def filter_paths(index, queries: np.ndarray, sizes: tuple[int, ...] = (100, 1000, 4000)) -> list[dict]:
    """ms per query of a search among ``allowed`` ids both ways: their vectors fetched by primary key and
    ranked here, or a Milvus search with an ``id in [...]`` filter (what ``fetch_limit`` chooses between)."""
    rows = []
    default = index.fetch_limit
    rng = np.random.default_rng(0)
    for size in sizes:
        allowed = np.sort(rng.choice(index.size, size, replace=False))
        row = {"system": "milvus", "measure": "filter", "allowed": size}
        for path, limit in (("fetched_ms", 10**12), ("expression_ms", 0)):
            index.fetch_limit = limit
            started = time.perf_counter()
            for q in queries:
                index.search(q[None], K, allowed=allowed)
            row[path] = round((time.perf_counter() - started) * 1000 / len(queries), 1)
        rows.append(row)
    index.fetch_limit = default
    return rows


def wait_indexed(index, n: int, limit_s: float = 1800) -> float | None:
    """Seconds until Milvus says every row is indexed (None: not within ``limit_s``)."""
    started = time.perf_counter()
    client, name = index._client, index.collection
    while time.perf_counter() - started < limit_s:
        info = client.describe_index(name, client.list_indexes(name)[0])
        if int(info.get("indexed_rows", 0)) >= n and not int(info.get("pending_index_rows", 0)):
            return round(time.perf_counter() - started, 2)
        time.sleep(1)
    return None


def summary(rows: list[dict]) -> list[dict]:
    """One row per system: the README's columns."""
    out = []
    for system in ("faiss", "milvus"):
        mine = {row["measure"]: row for row in rows if row.get("system") == system}
        if {"import", "disk", "query"} <= mine.keys():
            out.append({"system": system, "measure": "summary", "engine": mine["import"]["engine"],
                        "vectors_per_s": mine["import"]["vectors_per_s"], "bytes": mine["disk"]["bytes"],
                        "nprobe": mine["query"]["nprobe"], "recall_at_10": mine["query"]["recall_at_10"],
                        "p50_ms": mine["query"]["p50_ms"]})
    return out


def measure_size(root: Path, n: int, dim: int, queries: int, milvus_queries: int):
    """The rows of one size, each as it is measured: the data written (and removed after), bindsearch's FAISS
    engine, Milvus Lite, then one summary row per system."""
    folder = root / f"n{n}"
    space, fingerprint = space_identity(dim)
    try:
        started = time.perf_counter()
        data = write_size(folder, n, dim, queries, space, fingerprint)
        yield {"system": "data", "measure": "write", "write_s": round(time.perf_counter() - started, 2)}
        rows = measure_faiss_engine(data, folder, queries)
        yield from rows
        milvus = measure_milvus_lite(data, folder, milvus_queries)
        yield from milvus
        yield from summary(rows + milvus)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=sizes, default=sizes("200000,1000000"))
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--milvus-latency-queries", type=int, default=20)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "bindsearch-scale-out"))
    args = parser.parse_args()
    describe = machine()
    for n in args.sizes:
        for row in measure_size(Path(args.dir), n, args.dim, args.queries, args.milvus_latency_queries):
            print(json.dumps({"benchmark": "scale_out", "n": n, "dim": args.dim, "queries": args.queries,
                              "machine": describe, "load_1min": round(os.getloadavg()[0], 2), **row}), flush=True)

if __name__ == "__main__":
    main()
