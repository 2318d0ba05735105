"""One bindsearch process of the scale benchmark, started by scale.py so that its memory is its own.

    scale_bindsearch_child.py import  --library L --space JSON --file import.npz
    scale_bindsearch_child.py fill    --library L --space JSON --vectors vectors.npy
    scale_bindsearch_child.py query   --library L --queries Q.npy --truth T.npy --started-at T
    scale_bindsearch_child.py rebuild --library L --queries Q.npy --started-at T

Each prints one JSON object. ``import`` goes through the bulk import; ``fill`` stores the same
vectors through the library's writer one item at a time (what a library can do without bulk
import). ``query`` is the query process: first hits, warm latency, recall and memory. ``rebuild``
opens a library whose index files were deleted and queries once, which rebuilds them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
from peers.measure import memory_mib, query_run, rows, since_start
from scale_data import MODALITY, K, item_path, position_of

import bindsearch
from bindsearch.modality import Modality


def import_file(lib: bindsearch.Library, file: str, progress=None) -> object:
    """The bulk import being measured: the one place that names its call."""
    return lib.import_vectors(file, progress=progress)


def as_json(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json.loads(json.dumps(dataclasses.asdict(value), default=str))
    return None if value is None else str(value)


def run_import(library: str, space: dict, file: str, n: int) -> dict:
    written = [0.0]  # when the last chunk of rows was committed: the rest of the import builds the index

    def progress(done: int, total: int) -> None:
        written[0] = time.perf_counter()

    with bindsearch.open_library(library, space, create=True) as lib:
        started = time.perf_counter()
        report = import_file(lib, file, progress)
        seconds = time.perf_counter() - started
    rows_s = (written[0] - started) if written[0] else None
    return {"import_s": round(seconds, 2), "vectors_per_s": round(n / seconds, 1),
            "rows_written_s": None if rows_s is None else round(rows_s, 2),
            "index_build_s": None if rows_s is None else round(seconds - rows_s, 2),
            "report": as_json(report), **memory_mib()}


def run_fill(library: str, space: dict, vectors: str, n: int) -> dict:
    started = time.perf_counter()
    with bindsearch.open_library(library, space, create=True) as lib, lib.writer() as writer:
        for start, block in rows(vectors, chunk=5000):  # one transaction per block, as an indexing run commits
            for i, vector in enumerate(block, start):
                writer.put(item_path(i), Modality(MODALITY), 0, 0, None, vector)
            writer.commit()
    seconds = time.perf_counter() - started
    return {"fill_s": round(seconds, 2), "vectors_per_s": round(n / seconds, 1), **memory_mib()}


def searcher(lib: bindsearch.Library):
    def search(query: np.ndarray) -> np.ndarray:
        hits = lib.search(query, targets=[MODALITY], k=K)
        return np.array([position_of(hit.path) for hit in hits], dtype=np.int64)

    return search


def run_query(library: str, queries: str, truth: str, started_at: float) -> dict:
    with bindsearch.open_library(library) as lib:
        return query_run(searcher(lib), np.load(queries), np.load(truth), started_at)


def run_rebuild(library: str, queries: str, started_at: float) -> dict:
    """The rebuild's time and peak memory, and the memory of the process holding the index it built (the library
    still open): what the peak is measured against."""
    started = time.perf_counter()
    with bindsearch.open_library(library) as lib:
        found = searcher(lib)(np.load(queries)[0])
        seconds = time.perf_counter() - started
        memory = memory_mib()
    ratio = memory["peak_rss_mib"] / memory["rss_mib"] if memory["rss_mib"] and memory["peak_rss_mib"] else None
    return {"rebuild_s": round(seconds, 2), "process_s": since_start(started_at), "hits": len(found),
            "rss_with_index_mib": memory["rss_mib"], "peak_rss_mib": memory["peak_rss_mib"],
            "peak_to_index_process": None if ratio is None else round(ratio, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("import", "fill", "query", "rebuild"))
    parser.add_argument("--library", required=True)
    parser.add_argument("--space", type=json.loads)
    parser.add_argument("--file")
    parser.add_argument("--vectors")
    parser.add_argument("--n", type=int)
    parser.add_argument("--queries")
    parser.add_argument("--truth")
    parser.add_argument("--started-at", type=float)
    args = parser.parse_args()
    if args.mode == "import":
        out = run_import(args.library, args.space, args.file, args.n)
    elif args.mode == "fill":
        out = run_fill(args.library, args.space, args.vectors, args.n)
    elif args.mode == "query":
        out = run_query(args.library, args.queries, args.truth, args.started_at)
    else:
        out = run_rebuild(args.library, args.queries, args.started_at)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
