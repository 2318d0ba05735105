"""Chroma (HNSW) on the scale benchmark's vectors: run in benchmarks/peers/.venv by scale.py, JSON lines out.

    chroma_run.py build --vectors V.npy --store DIR
    chroma_run.py sweep --store DIR --queries Q.npy --truth T.npy
    chroma_run.py configure --store DIR --setting JSON
    chroma_run.py query --store DIR --queries Q.npy --truth T.npy --setting JSON --started-at T

``build`` adds the vectors to one collection of a persistent client, in batches of the largest size
the client takes, with Chroma's default HNSW graph (16 neighbours, ef_construction 100) over the
inner product. Searches differ only in ``ef_search``, the size of the candidate list. It is stored
with the collection and taken when a process loads the graph; changed in a process that has loaded it,
it does not reliably take effect (neither does dropping the client). So each setting is stored by a
``configure`` process and searched by a new ``query`` process, which checks it: the sweep runs that
pair for each setting.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import chromadb
import numpy as np
from chromadb.config import Settings
from measure import memory_mib, pick_setting, query_run, rows

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
             "batch": batch, "hnsw": graph, **memory_mib()}]


def configure(store: str, setting: dict) -> None:
    client(store).get_collection(COLLECTION).modify(configuration={"hnsw": {"ef_search": int(setting["ef_search"])}})


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


def in_new_process(*arguments: str) -> dict:
    done = subprocess.run([sys.executable, os.path.abspath(__file__), *arguments], capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        raise RuntimeError(f"chroma_run.py {arguments[0]} failed: {lines[-1]}")
    return json.loads(done.stdout.splitlines()[-1])


def sweep(store: str, queries: str, truth: str) -> list[dict]:
    """Larger candidate lists until recall reaches the target (larger still would only be slower)."""
    points = []
    for ef in EF_SEARCH:
        setting = json.dumps({"ef_search": ef})
        in_new_process("configure", "--store", store, "--setting", setting)
        found = in_new_process("query", "--store", store, "--queries", queries, "--truth", truth, "--setting", setting)
        point = {"measure": "sweep", "setting": found["setting"],
                 **{key: found[key] for key in ("recall_at_10", "p50_ms", "p95_ms")}}
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
        configure(args.store, setting)
        out = [{"measure": "configure", "setting": setting}]
    elif args.mode == "sweep":
        out = sweep(args.store, args.queries, args.truth)
    else:
        collection = checked(args.store, setting)
        out = [{"measure": "query", "variant": "hnsw", "setting": setting,
                **query_run(searcher(collection), np.load(args.queries), np.load(args.truth), args.started_at)}]
    for row in out:
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
