"""LanceDB on the scale benchmark's vectors: run in benchmarks/peers/.venv by scale.py, JSON lines out.

    lancedb_run.py build --vectors V.npy --store DIR
    lancedb_run.py sweep --store DIR --queries Q.npy --truth T.npy --variant ivf_pq
    lancedb_run.py query --store DIR --queries Q.npy --truth T.npy --variant ivf_pq --setting JSON --started-at T

``build`` writes one table (id, vector) from the vector file, a chunk at a time, then its IVF_PQ
index with LanceDB's default partitions and sub-vectors (cosine, which ranks unit vectors as the
inner product does). ``ivf_pq`` searches through the index, with ``nprobes`` partitions and a
``refine_factor`` times k candidates re-ranked on the full vectors; ``brute_force`` bypasses the
index and scans every vector.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("RUST_LOG", "error")  # LanceDB logs a deprecation warning per query otherwise

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import IvfPq
from measure import memory_mib, pick_setting, query_run, rows, sweep_point

TABLE = "vectors"
TARGET_RECALL = 0.95
NPROBES = (1, 2, 4, 8, 16, 32, 64)
REFINE_FACTORS = (None, 2, 5, 10, 20, 50)  # None: PQ distances only, no re-ranking


def build(vectors: str, store: str) -> list[dict]:
    n, dim = np.load(vectors, mmap_mode="r").shape
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("vector", pa.list_(pa.float32(), dim))])

    def batches():
        for start, block in rows(vectors):
            flat = pa.array(block.reshape(-1), type=pa.float32())
            yield pa.RecordBatch.from_arrays(
                [pa.array(np.arange(start, start + len(block), dtype=np.int64)),
                 pa.FixedSizeListArray.from_arrays(flat, dim)], schema=schema)

    started = time.perf_counter()
    table = lancedb.connect(store).create_table(TABLE, data=batches(), schema=schema)
    ingest_s = time.perf_counter() - started
    started = time.perf_counter()
    table.create_index("vector", config=IvfPq(distance_type="cosine"))
    index_s = time.perf_counter() - started
    details = table.list_indices()[0]
    return [{"measure": "import", "ingest_s": round(ingest_s, 2), "index_s": round(index_s, 2),
             "vectors_per_s": round(n / (ingest_s + index_s), 1), "ingest_vectors_per_s": round(n / ingest_s, 1),
             "index": str(getattr(details, "index_type", "")), **memory_mib()}]


def searcher(table, variant: str, setting: dict):
    """``search(query) -> ids`` for one variant and setting."""

    def search(query: np.ndarray) -> np.ndarray:
        q = table.search(query, vector_column_name="vector").distance_type("cosine")
        if variant == "brute_force":
            q = q.bypass_vector_index()
        else:
            q = q.nprobes(setting["nprobes"])
            if setting.get("refine_factor"):
                q = q.refine_factor(setting["refine_factor"])
        return q.limit(10).select(["id"]).to_arrow()["id"].to_numpy()

    return search


def sweep(table, queries: np.ndarray, truth: np.ndarray) -> list[dict]:
    """Every refine factor, with more partitions probed until recall reaches the target (more would
    only be slower) or stops rising (the codes, not the partitions, then hold it back); then the
    fastest setting that reaches the target."""
    points = []
    for refine in REFINE_FACTORS:
        before = -1.0
        for nprobes in NPROBES:
            setting = {"nprobes": nprobes, "refine_factor": refine}
            point = {"measure": "sweep", "setting": setting,
                     **sweep_point(searcher(table, "ivf_pq", setting), queries, truth)}
            points.append(point)
            if point["recall_at_10"] >= TARGET_RECALL or point["recall_at_10"] <= before:
                break
            before = point["recall_at_10"]
    chosen = pick_setting(points, TARGET_RECALL)
    return [*points, {"measure": "chosen", "target_recall": TARGET_RECALL, "setting": chosen["setting"],
                      "reached": chosen["reached"]}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("build", "sweep", "query"))
    parser.add_argument("--store", required=True)
    parser.add_argument("--vectors")
    parser.add_argument("--queries")
    parser.add_argument("--truth")
    parser.add_argument("--variant", choices=("ivf_pq", "brute_force"), default="ivf_pq")
    parser.add_argument("--setting", default="{}")
    parser.add_argument("--started-at", type=float)
    args = parser.parse_args()
    if args.mode == "build":
        out = build(args.vectors, args.store)
    else:
        table = lancedb.connect(args.store).open_table(TABLE)
        queries, truth = np.load(args.queries), np.load(args.truth)
        if args.mode == "sweep":
            out = sweep(table, queries, truth)
        else:
            setting = json.loads(args.setting)
            out = [{"measure": "query", "variant": args.variant, "setting": setting,
                    **query_run(searcher(table, args.variant, setting), queries, truth, args.started_at)}]
    for row in out:
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
