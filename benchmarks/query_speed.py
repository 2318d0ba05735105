"""Query speed: warm searches over 100 000 items, and a cold query from the shell against the model load.

1. Writes (once) a random checkpoint of the full ImageBind-Huge architecture
   (the same file as tower_loading.py, 4.5 GB) and a library bound to it holding
   ``--items`` image vectors plus a few thousand audio and text ones (synthetic
   unit vectors: search cost does not depend on where vectors came from).
2. Warm: the library open and its indexes loaded, the time from a query vector
   to hits (``Library.search``), over many random queries: one modality, every
   modality merged with calibration, a tag filter, and dedup.
3. Cold: ``bindsearch query --text "a dog"`` as a new process, against the
   time a new process takes to load the text tower and embed the text (the
   model load) plus the warm search: the goal is at most 1.5x.

Prints one JSON object per measurement:

    python benchmarks/query_speed.py --items 100000
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
from common import CONFIGS, machine
from tower_loading import write_checkpoint

import bindsearch
from bindsearch import Filters
from bindsearch.modality import Modality
from bindsearch.vectors import l2_normalize

MODEL_LOAD = r"""
import sys, bindsearch
space = bindsearch.load_space(sys.argv[1])
space.embed("text", "a dog")
"""


def build_library(path: Path, space_file: Path, items: int) -> None:
    rng = np.random.default_rng(0)
    sizes = {Modality.IMAGE: items, Modality.AUDIO: max(1, items // 50), Modality.TEXT: max(1, items // 100)}
    with bindsearch.open_library(path, space_file, create=True) as lib, lib.writer() as writer:
        for modality, n in sizes.items():
            # Each modality's vectors crowd around a direction of its own, as real embeddings do.
            centre = l2_normalize(rng.normal(size=lib.dim))
            for begin in range(0, n, 5000):
                block = l2_normalize(rng.normal(size=(min(5000, n - begin), lib.dim)) + 4 * centre)
                for i, vector in enumerate(block):
                    j = begin + i
                    writer.put(f"/data/{modality.value}/{j:07d}", modality, 1000 + j, j, f"{modality.value}{j}",
                               vector, tags=("sample",) if j % 10 == 0 else ())
                writer.commit()


def timed(fn, repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    times.sort()
    return {"median_ms": round(1000 * times[len(times) // 2], 2),
            "p95_ms": round(1000 * times[int(len(times) * 0.95)], 2), "best_ms": round(1000 * times[0], 2)}


def best_wall(command: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "bindsearch-bench"))
    args = parser.parse_args()

    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    checkpoint = root / "imagebind-huge.pth"
    if not checkpoint.exists():
        write_checkpoint(checkpoint, CONFIGS["huge"])
    space_file = root / "imagebind-huge-random-file.json"
    space_file.write_text(json.dumps({"model": "imagebind", "checkpoint": str(checkpoint)}))
    library = root / f"query-library-{args.items}"
    if not (library / "library.sqlite").exists():
        build_library(library, space_file, args.items)
    common = {"benchmark": "query_speed", "items": args.items, "machine": machine()}

    rng = np.random.default_rng(1)
    with bindsearch.open_library(library) as lib:
        counts = {m.value: n for m, n in lib.counts().items()}
        queries = iter(l2_normalize(rng.normal(size=(100 * args.queries, lib.dim))))
        cases = {
            "image": lambda: lib.search(next(queries), targets=["image"], k=10),
            "all_modalities_calibrated": lambda: lib.search(next(queries), targets=["all"], k=10),
            "image_tag_filter": lambda: lib.search(next(queries), targets=["image"], k=10,
                                                   filters=Filters(tags=("sample",))),
            "image_dedup": lambda: lib.search(next(queries), targets=["image"], k=10, dedup=0.95),
        }
        for name, fn in cases.items():
            fn()  # loads the indexes (and for filters, nothing is cached: every query selects anew)
            print(json.dumps({**common, "measure": "warm_search", "case": name, "counts": counts,
                              **timed(fn, args.queries)}), flush=True)
        warm_search_s = timed(cases["image"], args.queries)["median_ms"] / 1000

    env_python = [sys.executable]
    load_s = best_wall([*env_python, "-c", MODEL_LOAD, str(space_file)], 2)
    cold_s = best_wall([*env_python, "-m", "bindsearch.cli", "query", "--text", "a dog", "--target", "image",
                        "--library", str(library), "--json"], 2)
    print(json.dumps({**common, "measure": "cold_query", "model_load_s": round(load_s, 3),
                      "warm_search_s": round(warm_search_s, 4), "cold_query_s": round(cold_s, 3),
                      "cold_over_load_plus_search": round(cold_s / (load_s + warm_search_s), 3)}), flush=True)


if __name__ == "__main__":
    main()
