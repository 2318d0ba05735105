"""Finding near-duplicates: ``Library.duplicates`` over a library of many vectors with planted near-copies.

Builds (once) a library of ``--items`` synthetic 1024-dimensional image vectors
(unit vectors around a shared direction, as real embeddings crowd) of which
``--copies`` are near-copies of others (cosine about 0.98), then times
``Library.duplicates(0.95)`` (a FAISS range search per block of rows) and
checks that every planted pair was found. Prints one JSON object:

    python benchmarks/duplicates.py --items 20000 --copies 400
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import TINY, machine

import bindsearch
from bindsearch.modality import Modality
from bindsearch.vectors import l2_normalize

DIM = 1024


def build_library(path: Path, space_file: Path, items: int, copies: int) -> dict[int, int]:
    """The library, and for each planted copy (by position) the position of its original."""
    rng = np.random.default_rng(0)
    centre = l2_normalize(rng.normal(size=DIM))
    vectors = l2_normalize(rng.normal(size=(items, DIM)) / np.sqrt(DIM) + 0.7 * centre)
    originals = rng.choice(items - copies, size=copies, replace=False)
    planted = {}
    for n, original in enumerate(originals):
        position = items - copies + n
        noise = rng.normal(size=DIM) / np.sqrt(DIM)
        vectors[position] = l2_normalize(vectors[original] + 0.2 * noise)
        planted[position] = int(original)
    with bindsearch.open_library(path, space_file, create=True) as lib, lib.writer() as writer:
        for begin in range(0, items, 5000):
            for j in range(begin, min(items, begin + 5000)):
                writer.put(f"/data/image/{j:07d}.jpg", Modality.IMAGE, 1000 + j, j, f"h{j}", vectors[j])
            writer.commit()
    return planted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--copies", type=int, default=400)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "bindsearch-bench"))
    args = parser.parse_args()

    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    space_file = root / "imagebind-1024-random.json"
    space_file.write_text(json.dumps({"model": "imagebind", "checkpoint": None, "seed": 0,
                                      "config": {**TINY, "out_embed_dim": DIM}}))
    library = root / f"duplicates-library-{args.items}-{args.copies}"
    if library.exists():
        import shutil

        shutil.rmtree(library)
    planted = build_library(library, space_file, args.items, args.copies)
    with bindsearch.open_library(library) as lib:
        lib.vector_index(Modality.IMAGE)  # loaded before the clock starts, as a query would find it
        started = time.perf_counter()
        groups = lib.duplicates(0.95)
        seconds = time.perf_counter() - started
    together = set()
    for group in groups:
        positions = [int(Path(i.path).stem) for i in group.items]
        together |= {(a, b) for a in positions for b in positions if a != b}
    found = sum((copy, original) in together for copy, original in planted.items())
    print(json.dumps({"benchmark": "duplicates", "items": args.items, "dim": DIM, "planted_pairs": len(planted),
                      "planted_pairs_found": found, "groups": len(groups), "seconds": round(seconds, 3),
                      "items_per_s": round(args.items / seconds), "machine": machine()}), flush=True)


if __name__ == "__main__":
    main()
