"""What keeping a library's vectors sound costs: the one-time check of its stored vectors, and loading
an index with its checksum and the sample compared with SQLite, against FAISS reading the file alone.

1. Writes a library of ``--items`` synthetic unit image vectors of ``--dim`` values (no model: what
   is measured does not depend on where vectors came from), then forgets that it was checked.
2. ``first_open``: opening it, which reads every stored vector once; ``open``: opening it again.
3. ``index_load``: ``VectorIndex.load`` (FAISS read plus checksum) and the sample check, against
   ``faiss.read_index`` alone, best of ``--repeat``.

Prints one JSON object per measurement:

    python benchmarks/vector_checks.py --items 100000 --dim 1024
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from common import TINY, machine

import bindsearch
from bindsearch.library.soundness import CHECKED_KEY, index_disagreement
from bindsearch.library.vector_index import VectorIndex
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
            lib.vector_index(Modality.IMAGE)  # rebuilt once if need be, and saved with its checksum
            [file] = (path / "index").glob("image-g*.faiss")
            faiss_only = best_of(args.repeat, lambda: faiss.read_index(str(file)))
            load = best_of(args.repeat, lambda: VectorIndex.load(str(file), lib.dim))
            index = VectorIndex.load(str(file), lib.dim)
            with lib._engine.connect() as conn:
                sample = best_of(args.repeat, lambda: index_disagreement(conn, index, Modality.IMAGE, False))
        print(json.dumps({**row, "measure": "index_load", "file_mb": round(file.stat().st_size / 2**20, 1),
                          "faiss_read_s": round(faiss_only, 4), "load_with_checksum_s": round(load, 4),
                          "sample_check_s": round(sample, 4)}))


if __name__ == "__main__":
    main()
