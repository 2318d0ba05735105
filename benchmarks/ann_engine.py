"""The ``bindsearch.ann`` engines end to end: build memory and time, first query in a new process, query
memory, latency (with filters and a tail) and recall, over clustered 1024-d vectors.

The vectors sit in a raw float32 file standing in for the vector store: the build reads it a chunk at a
time and fetches its training sample by id; the query process memory-maps it to re-rank. Each step runs in
a process of its own, so that its peak memory is its own. Prints one JSON object per measurement:

    python benchmarks/ann_engine.py --n 100000 200000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from clustered import ClusteredVectors, exact_top_k, recall_at_k
from common import machine

CHUNK = 10_000  # rows a build reads at once: 40 MB at 1024 dims
QUERIES = 200


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def store_reader(path: Path, dim: int):
    """(chunks, fetch) over a raw float32 file of unit rows whose ids are their row numbers, read with plain
    file reads: only what is asked for is ever in memory."""
    n = path.stat().st_size // (4 * dim)
    ids = np.arange(n, dtype=np.int64)

    def chunks():
        with open(path, "rb") as f:
            for start in range(0, n, CHUNK):
                block = np.fromfile(f, dtype=np.float32, count=min(CHUNK, n - start) * dim)
                yield ids[start : start + block.size // dim], block.reshape(-1, dim)

    def fetch(wanted: np.ndarray) -> np.ndarray:
        out = np.empty((wanted.size, dim), np.float32)
        with open(path, "rb") as f:
            for row, i in enumerate(wanted):
                out[row] = np.frombuffer(os.pread(f.fileno(), 4 * dim, int(i) * 4 * dim), np.float32)
        return out

    return ids, chunks, fetch


def build_step(store: Path, index_path: Path, dim: int) -> dict:
    from bindsearch.ann import build_index

    ids, chunks, fetch = store_reader(store, dim)
    before = status_kb("VmRSS")
    started = time.perf_counter()
    index = build_index(ids, chunks, dim, fetch)
    build_s = time.perf_counter() - started
    peak = status_kb("VmHWM")
    index.save(str(index_path))
    stats = index.stats()
    return {"kind": stats.kind, "n": int(ids.size), "build_s": round(build_s, 1),
            "build_peak_mb": round((peak - before) / 1024, 1), "chunk_mb": round(CHUNK * dim * 4 / 2**20, 1),
            "rss_before_mb": round(before / 1024, 1),
            "index_file_mb": round(index_path.stat().st_size / 2**20, 1),
            "file_bytes_per_vector": round(index_path.stat().st_size / ids.size, 1),
            "expected_recall": stats.expected_recall,
            **(index.params.to_dict() if hasattr(index, "params") else {})}


def query_step(store: Path, index_path: Path, queries_path: Path, dim: int, started: float) -> dict:
    from bindsearch.ann import load_index

    n = store.stat().st_size // (4 * dim)
    vectors = np.memmap(store, dtype=np.float32, mode="r", shape=(n, dim))
    index = load_index(str(index_path), dim, lambda ids: vectors[ids])
    queries = np.load(queries_path)
    index.search(queries[:1], 10)
    first_query_s = time.time() - started  # from before the process started: imports, load, one query
    anon_after_load = status_kb("RssAnon")
    out = {"first_query_s": round(first_query_s, 3), "rss_anon_after_load_mb": round(anon_after_load / 1024, 1)}
    rng = np.random.default_rng(0)
    cases = {"plain": None, **{f"allowed_{share}": np.sort(rng.choice(n, int(share * n), replace=False))
                               for share in (0.001, 0.01, 0.1, 0.5)}}
    found = np.zeros((queries.shape[0], 10), np.int64)
    for case, allowed in cases.items():
        times = []
        for i, query in enumerate(queries):
            t = time.perf_counter()
            _, ids = index.search(query[None, :], 10, allowed=allowed)
            times.append(time.perf_counter() - t)
            if allowed is None:
                found[i] = ids[0]
        times.sort()
        out[f"{case}_p50_ms"] = round(1000 * times[len(times) // 2], 2)
        out[f"{case}_p95_ms"] = round(1000 * times[int(0.95 * len(times))], 2)
    np.save(queries_path.with_suffix(".found.npy"), found)
    # A tail of 1% new vectors (the queries' neighbours, perturbed), searched with the codes.
    tail = int(0.01 * n)
    extra = vectors[rng.integers(0, n, tail)] + 0.01 * rng.standard_normal((tail, dim)).astype(np.float32)
    index.add(np.arange(n, n + tail), extra / np.linalg.norm(extra, axis=1, keepdims=True))
    times = []
    for query in queries:
        t = time.perf_counter()
        index.search(query[None, :], 10)
        times.append(time.perf_counter() - t)
    times.sort()
    out["tail"] = tail
    out["with_tail_p50_ms"] = round(1000 * times[len(times) // 2], 2)
    out["rss_anon_mb"] = round(status_kb("RssAnon") / 1024, 1)
    out["rss_mb"] = round(status_kb("VmRSS") / 1024, 1)  # with the store's pages the re-rank touched
    return out


def run_step(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000])
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--dir", type=Path, default=None, help="where the vector file and index go")
    parser.add_argument("--step", choices=["build", "query"], help=argparse.SUPPRESS)
    parser.add_argument("--paths", nargs=3, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--started", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "build":
        print(json.dumps(build_step(args.paths[0], args.paths[1], args.dim)))
        return
    if args.step == "query":
        print(json.dumps(query_step(*args.paths, args.dim, args.started)))
        return

    folder = Path(args.dir or tempfile.mkdtemp(prefix="bindsearch-ann-"))
    folder.mkdir(parents=True, exist_ok=True)
    for n in args.n:
        data = ClusteredVectors(dim=args.dim)
        store, index_path, queries_path = folder / f"store-{n}.f32", folder / f"index-{n}", folder / f"q-{n}.npy"
        with open(store, "wb") as f:
            for _start, block in data.chunks(n):
                f.write(block.tobytes())
        queries = data.queries(QUERIES)
        np.save(queries_path, queries)
        row = {"benchmark": "ann_engine", "machine": machine(), "dim": args.dim, "queries": QUERIES}
        row.update(run_step("--step", "build", "--dim", str(args.dim), "--paths", str(store), str(index_path),
                            str(queries_path)))
        started = time.time()
        # The query process measures its first query from its own start: started is passed on, wall clock.
        query = run_step("--step", "query", "--dim", str(args.dim), "--started", str(started), "--paths",
                         str(store), str(index_path), str(queries_path))
        vectors = np.memmap(store, dtype=np.float32, mode="r", shape=(n, args.dim))
        truth = exact_top_k(np.asarray(vectors), queries, 10)
        found = np.load(queries_path.with_suffix(".found.npy"))
        row.update(query, recall_at_10=round(recall_at_k(found, truth), 4))
        print(json.dumps(row), flush=True)
        for path in (store, index_path, queries_path, queries_path.with_suffix(".found.npy")):
            path.unlink()


if __name__ == "__main__":
    main()
