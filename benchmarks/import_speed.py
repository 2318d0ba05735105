"""How fast ``import`` takes in vectors made elsewhere: rows per second, from the file to a saved library.

Writes ``--rows`` random unit vectors of ``--dim`` values as a ``.npz`` and as a ``.parquet`` (as
``export`` writes them, but naming no space: taken on dimension alone), then imports each into a new
library of a random-weight space of that dimension (no model runs, nothing is downloaded), timed
from opening the file to the FAISS index saved. The paths name no file, so each costs one failed
stat. For comparison, ``baseline`` stores ``--baseline-rows`` of the same vectors through the
writer's per-row ``put`` and a ``commit`` every 10 000. Everything is written under a temporary
folder that is deleted at the end. Prints one JSON object per measurement:

    python benchmarks/import_speed.py                        # 100 000 x 1024
    python benchmarks/import_speed.py --rows 20000 --baseline-rows 0
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from common import TINY, machine

import bindsearch
from bindsearch.export import ExportRows, SpaceLabel, write_npz, write_parquet
from bindsearch.modality import Modality
from bindsearch.vectors import l2_normalize

_CHUNK = 10_000


def unit_vectors(rows: int, dim: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.concatenate([l2_normalize(rng.normal(size=(min(_CHUNK, rows - b), dim)).astype(np.float32))
                           for b in range(0, rows, _CHUNK)]) if rows else np.zeros((0, dim), np.float32)


def write_files(folder: Path, vectors: np.ndarray) -> dict[str, Path]:
    paths = [f"/data/photos/{i // 1000:04d}/{i:08d}.jpg" for i in range(len(vectors))]
    rows = ExportRows(paths, ["image"] * len(paths), vectors, [[] for _ in paths])
    files = {"npz": folder / "vectors.npz", "parquet": folder / "vectors.parquet"}
    # No space named (empty), as in a file made by another tool: taken on dimension alone.
    unnamed = SpaceLabel("", "", "")
    write_npz(str(files["npz"]), rows, unnamed)
    write_parquet(str(files["parquet"]), rows, unnamed)
    return files


def timed_import(library: Path, space: Path, file: Path) -> tuple[float, dict]:
    with bindsearch.open_library(library, space, create=True) as lib:
        started = time.perf_counter()
        report = lib.import_vectors(file)
        seconds = time.perf_counter() - started
    return seconds, {"imported": report.imported, "skipped": report.skipped}


def timed_baseline(library: Path, space: Path, vectors: np.ndarray) -> float:
    with bindsearch.open_library(library, space, create=True) as lib:
        started = time.perf_counter()
        with lib.writer() as writer:
            for i, vector in enumerate(vectors):
                writer.put(f"/data/{i:08d}.jpg", Modality.IMAGE, 0, 0, None, vector)
                if writer.pending >= _CHUNK:
                    writer.commit()
            writer.commit()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--baseline-rows", type=int, default=20_000, help="0: no baseline")
    args = parser.parse_args()
    row = {"benchmark": "import_speed", "dim": args.dim, "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="bindsearch-bench-import-") as tmp:
        folder = Path(tmp)
        space = folder / "space.json"
        space.write_text(json.dumps({"model": "imagebind", "checkpoint": None, "seed": 0,
                                     "config": {**TINY, "out_embed_dim": args.dim}}))
        vectors = unit_vectors(args.rows, args.dim)
        files = write_files(folder, vectors)
        for fmt, file in files.items():
            seconds, counts = timed_import(folder / f"lib-{fmt}", space, file)
            print(json.dumps({**row, "measure": "import", "format": fmt, "rows": args.rows,
                              "file_mb": round(file.stat().st_size / 2**20, 1), "seconds": round(seconds, 2),
                              "rows_per_s": round(args.rows / seconds), **counts}), flush=True)
        if args.baseline_rows:
            seconds = timed_baseline(folder / "lib-baseline", space, vectors[: args.baseline_rows])
            print(json.dumps({**row, "measure": "baseline put+commit", "rows": args.baseline_rows,
                              "seconds": round(seconds, 2), "rows_per_s": round(args.baseline_rows / seconds)}))


if __name__ == "__main__":
    main()
