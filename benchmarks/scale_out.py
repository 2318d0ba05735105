"""Scale out: the vector backends at the scale workloads, and Ray against the local pipeline.

1. For each size (200 000 and 1 000 000 clustered 1024-d vectors by default, as ``scale.py``): bindsearch's
   own FAISS engine against a Milvus Lite collection (``scale_out_milvus``): import rate, p50/p95 at the
   fastest setting whose recall@10 reaches 0.95, bytes on disk; one ``summary`` row per system.
2. ``bindsearch index`` of a mixed folder of photos and sounds, with a compute-bound ImageBind
   architecture, by the local pipeline and by ``--ray`` on a Ray started on this machine, alternating,
   best of ``--rounds`` each (``scale_out_ray``): files/s, Ray's start-up left out and reported.

One machine shows the costs of each backend and of Ray's machinery, not what many machines gain: a
Milvus server's HNSW on its own hardware, or a Ray cluster of GPU nodes, is not measured here.
Prints one JSON object per line:

    python benchmarks/scale_out.py --sizes 200000 --rounds 3
    python benchmarks/scale_out.py --sizes 200000,1000000 --skip-ray
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from common import CONFIGS, machine
from index_throughput import write_folder
from scale_bindsearch import space_identity
from scale_data import write_size
from scale_out_milvus import measure_faiss_engine, measure_milvus_lite, sizes, summary
from scale_out_ray import measure_ray


def backends(root: Path, ns: list[int], dim: int, queries: int, milvus_queries: int, describe: str) -> None:
    space, fingerprint = space_identity(dim)
    for n in ns:
        folder = root / f"n{n}"

        def emit(row: dict, n: int = n) -> None:
            print(json.dumps({"benchmark": "scale_out", "part": "backends", "n": n, "dim": dim, "queries": queries,
                              "machine": describe, "load_1min": round(os.getloadavg()[0], 2), **row}), flush=True)

        try:
            started = time.perf_counter()
            data = write_size(folder, n, dim, queries, space, fingerprint)
            emit({"system": "data", "measure": "write", "write_s": round(time.perf_counter() - started, 2)})
            rows = measure_faiss_engine(data, folder, queries)
            rows += measure_milvus_lite(data, folder, milvus_queries)
            for row in rows + summary(rows):
                emit(row)
        except MemoryError as exc:  # (1M on a small machine: said, the rest still runs)
            emit({"system": "all", "skipped": f"out of memory: {exc}"})
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def ray_against_local(root: Path, config: str, images: int, sounds: int, rounds: int, batch: int,
                      describe: str) -> None:
    folder = root / f"mixed-{images}-{sounds}"
    if not folder.exists():
        write_folder(folder, images, sounds)
    space_file = root / f"imagebind-{config}-random.json"
    space_file.write_text(json.dumps({"model": "imagebind", "checkpoint": None, "config": CONFIGS[config]}))
    common = {"benchmark": "scale_out", "part": "ray", "config": config, "images": images, "sounds": sounds,
              "machine": describe}
    for row in measure_ray(folder, space_file, images + sounds, rounds=rounds, batch=batch, common=common):
        print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=sizes, default=sizes("200000,1000000"))
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--milvus-latency-queries", type=int, default=20)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="mid")
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--sounds", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of local and Ray; best counts")
    parser.add_argument("--skip-backends", action="store_true")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "bindsearch-scale-out"))
    args = parser.parse_args()
    root, describe = Path(args.dir), machine()
    root.mkdir(parents=True, exist_ok=True)
    if not args.skip_backends:
        backends(root, args.sizes, args.dim, args.queries, args.milvus_latency_queries, describe)
    if not args.skip_ray:
        ray_against_local(root, args.config, args.images, args.sounds, args.rounds, args.batch_size, describe)


if __name__ == "__main__":
    main()
