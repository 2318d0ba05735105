"""Chroma (HNSW) on the scale benchmark's vectors: run in benchmarks/peers/.venv by scale.py, JSON lines out.

    chroma_run.py build --vectors V.npy --store DIR
    chroma_run.py sweep --store DIR --queries Q.npy --truth T.npy
    chroma_run.py configure --store DIR --setting JSON
    chroma_run.py query --store DIR --queries Q.npy --truth T.npy --setting JSON --started-at T

``build`` adds the vectors to one collection of a persistent client, in batches of the largest size
the client takes, with Chroma's default HNSW graph (16 neighbours, ef_construction 100) over the
inner product. Searches differ only in ``ef_search``, the size of the candidate list. It is stored
with the collection and read when the process first loads its graph: changed later, it has no effect
until the graph is loaded again. So the sweep reloads the graph for each setting, and ``configure``
stores the chosen one before the query process starts (which checks it).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import chromadb
import numpy as np
from chromadb.api.client import SharedSystemClient
from chromadb.config import Settings
from measure import disk_bytes, memory_mib, pick_setting, query_run, rows, sweep_point

COLLECTION = "vectors"
TARGET_RECALL = 0.95
EF_SEARCH = (10, 20, 40, 80, 160, 320, 640)


def client(store: str):
    return chromadb.PersistentClient(path=store, settings=Settings(anonymized_telemetry=False))


def build(vectors: str, store: str) -> list[dict]:
    n = np.load(vectors, mmap_mode="r").shape[0]
    db = client(store)
    collection = db.create_collection(COLLECTION, configuration={"hnsw": {"space": "ip"}}, embedding_function=None)
    batch = db.get_max_batch_size()
    started = time.perf_counter()
    for start, block in rows(vectors, chunk=batch):
        collection.add(ids=[str(i) for i in range(start, start + len(block))], embeddings=block)
    import_s = time.perf_counter() - started
    hnsw = collection.configuration.get("hnsw") or {}
    graph = {key: hnsw.get(key) for key in ("space", "max_neighbors", "ef_construction")}
    return [{"measure": "import", "import_s": round(import_s, 2), "vectors_per_s": round(n / import_s, 1),
             "batch": batch, "hnsw": graph, **memory_mib()},
            {"measure": "disk", "bytes": disk_bytes(store), "bytes_per_item": round(disk_bytes(store) / n, 1)}]


def configured(store: str, setting: dict):
    """The collection, with ``setting`` stored and its graph loaded afresh, so that the setting holds."""
    client(store).get_collection(COLLECTION).modify(configuration={"hnsw": {"ef_search": int(setting["ef_search"])}})
    SharedSystemClient.clear_system_cache()  # drops the loaded graph with the client
    return checked(store, setting)


def checked(store: str, setting: dict):
    """The collection, opened; ValueError unless its stored ``ef_search`` is the one of ``setting``."""
    collection = client(store).get_collection(COLLECTION)
    stored = (collection.configuration.get("hnsw") or {}).get("ef_search")
    if stored != setting["ef_search"]:
        raise ValueError(f"the collection searches with ef_search {stored}, not {setting['ef_search']}")
    return collection


def searcher(collection):
    def search(query: np.ndarray) -> np.ndarray:
        found = collection.query(query_embeddings=query[None], n_results=10, include=[])
        return np.array([int(i) for i in found["ids"][0]], dtype=np.int64)

    return search


def sweep(store: str, queries: np.ndarray, truth: np.ndarray) -> list[dict]:
    """Larger candidate lists until recall reaches the target (larger still would only be slower)."""
    points = []
    for ef in EF_SEARCH:
        setting = {"ef_search": ef}
        collection = configured(store, setting)
        point = {"measure": "sweep", "setting": setting, **sweep_point(searcher(collection), queries, truth)}
        points.append(point)
        if point["recall_at_10"] >= TARGET_RECALL:
            break
    chosen = pick_setting(points, TARGET_RECALL)
    return [*points, {"measure": "chosen", "target_recall": TARGET_RECALL, "setting": chosen["setting"],
                      "reached": chosen["reached"]}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("build", "sweep", "configure", "query"))
    parser.add_argument("--store", required=True)
    parser.add_argument("--vectors")
    parser.add_argument("--queries")
    parser.add_argument("--truth")
    parser.add_argument("--variant", choices=("hnsw",), default="hnsw")
    parser.add_argument("--setting", default='{"ef_search": 100}')
    parser.add_argument("--started-at", type=float)
    args = parser.parse_args()
    setting = json.loads(args.setting)
    if args.mode == "build":
        out = build(args.vectors, args.store)
    elif args.mode == "configure":
        configured(args.store, setting)
        out = [{"measure": "configure", "setting": setting}]
    elif args.mode == "sweep":
        out = sweep(args.store, np.load(args.queries), np.load(args.truth))
    else:
        collection = checked(args.store, setting)
        out = [{"measure": "query", "variant": "hnsw", "setting": setting,
                **query_run(searcher(collection), np.load(args.queries), np.load(args.truth), args.started_at)}]
    for row in out:
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
