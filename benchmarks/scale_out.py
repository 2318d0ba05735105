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
import tempfile
from pathlib import Path

from common import CONFIGS, machine
from scale_out_milvus import measure_size, sizes
from scale_out_ray import measure_on_mixed_folder


def backends(root: Path, ns: list[int], dim: int, queries: int, milvus_queries: int, describe: str) -> None:
    for n in ns:
        header = {"benchmark": "scale_out", "part": "backends", "n": n, "dim": dim, "queries": queries,
                  "machine": describe}
        try:
            for row in measure_size(root, n, dim, queries, milvus_queries):
                print(json.dumps({**header, "load_1min": round(os.getloadavg()[0], 2), **row}), flush=True)
        except MemoryError as exc:  # (1M on a small machine: said, the rest still runs)
            print(json.dumps({**header, "system": "all", "skipped": f"out of memory: {exc}"}), flush=True)


def ray_against_local(root: Path, config: str, images: int, sounds: int, rounds: int, batch: int,
                      describe: str) -> None:
    common = {"benchmark": "scale_out", "part": "ray", "config": config, "images": images, "sounds": sounds,
              "machine": describe}
    for row in measure_on_mixed_folder(root, config, images, sounds, rounds=rounds, batch=batch, common=common):
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
