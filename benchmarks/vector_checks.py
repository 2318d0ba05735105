"""What keeping a library's vectors sound costs: the one-time check of its stored vectors, and loading
an approximate index with its checksum and the reconciliation with the library's records (every
vector's CRC-32 the index was built with against the one SQLite holds now), against the file alone.

1. Writes a library of ``--items`` synthetic unit image vectors of ``--dim`` values (no model: what
   is measured does not depend on where vectors came from), then forgets that it was checked.
2. ``first_open``: opening it, which reads every stored vector once; ``open``: opening it again.
3. ``index_load``: reading the index file with its checksum (``ann.load_index``), and the whole load
   a query does (that read plus reading the records and reconciling them with the index), best of
   ``--repeat``; the exact limit is set below ``--items`` so that the index is an approximate one.

Prints one JSON object per measurement:

    python benchmarks/vector_checks.py --items 100000 --dim 1024
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
from common import TINY, machine

import bindsearch
from bindsearch.ann import load_index
from bindsearch.library.index_builds import slot_fetch
from bindsearch.library.soundness import CHECKED_KEY
from bindsearch.modality import Modality
from bindsearch.vectors import l2_normalize


def build(path: Path, items: int, dim: int) -> None:
    space = path.parent / "space.json"
    space.write_text(json.dumps({"model": "imagebind", "checkpoint": None, "seed": 0,
                                 "config": {**TINY, "out_embed_dim": dim}}))
    rng = np.random.default_rng(0)
    with bindsearch.open_library(path, space, create=True) as lib, lib.writer() as writer:
        for begin in range(0, items, 5000):
            block = l2_normalize(rng.normal(size=(min(5000, items - begin), dim)))
            for i, vector in enumerate(block):
                writer.put(f"/data/{begin + i:07d}.png", Modality.IMAGE, 1, 1, f"h{begin + i}", vector)
            writer.commit()
    conn = sqlite3.connect(str(path / "library.sqlite"))
    with conn:
        conn.execute("DELETE FROM meta WHERE key = ?", (CHECKED_KEY,))
    conn.close()


def best_of(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["BINDSEARCH_EXACT_LIMIT"] = str(max(1, args.items // 4))
    row = {"benchmark": "vector_checks", "items": args.items, "dim": args.dim, "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="bindsearch-bench-") as tmp:
        path = Path(tmp) / "lib"
        build(path, args.items, args.dim)
        started = time.perf_counter()
        bindsearch.open_library(path).close()
        print(json.dumps({**row, "measure": "first_open", "seconds": round(time.perf_counter() - started, 3)}))
        seconds = best_of(args.repeat, lambda: bindsearch.open_library(path).close())
        print(json.dumps({**row, "measure": "open", "seconds": round(seconds, 4)}))

        with bindsearch.open_library(path) as lib:
            key = (Modality.IMAGE, False)
            lib.vector_index(Modality.IMAGE)  # built once, and saved with its checksum
            file = Path(lib.indexes.builder.index_file(key))
            slots = lib.slot_map(Modality.IMAGE)
            read = best_of(args.repeat, lambda: load_index(str(file), lib.dim, slot_fetch(lib.vectors, key, slots)))

            def whole_load() -> None:
                lib.indexes.builder.load(key, lib.slot_map(Modality.IMAGE))

            load = best_of(args.repeat, whole_load)
        print(json.dumps({**row, "measure": "index_load", "file_mb": round(file.stat().st_size / 2**20, 1),
                          "read_with_checksum_s": round(read, 4), "load_and_reconcile_s": round(load, 4)}))


if __name__ == "__main__":
    main()
