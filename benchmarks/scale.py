"""Scale: bindsearch against exact flat FAISS, LanceDB and Chroma at 100k, 300k and 1M clustered vectors.

For each size, one pass writes ``ClusteredVectors(dim, seed=0)`` to a ``.npy`` (which every
system reads), an ``.npz`` for bindsearch's bulk import, and the exact top-10 of the queries
(streamed, one chunk in memory at a time). Then, each in processes of its own:

- bindsearch: import rate (``Library.import_vectors``), bytes on disk per item, a query
  process (first query from its start, RSS after warm-up and peak, p50/p95 of
  ``lib.search(vector, targets=["image"], k=10)``, recall@10), the bare
  ``import bindsearch`` time, and the rebuild of deleted index files (time, peak RSS);
- FAISS ``IndexFlatIP`` with the same threads: p50/p95, recall, RSS;
- LanceDB IVF_PQ (sweeping nprobes and refine_factor), LanceDB brute force, and Chroma
  HNSW (sweeping ef_search), in benchmarks/peers/.venv (``benchmarks/peers/setup.sh``):
  import rate, disk, the sweep, and a query process at the fastest setting whose
  recall@10 reaches 0.95.

A capability that is missing, or a process that fails, gives a row with ``skipped`` and the
reason; the rest still run. Each size ends with one ``summary`` row per system (the README
table's columns). Prints one JSON object per line:

    python benchmarks/scale.py --sizes 100000 --dir /tmp/bindsearch-scale
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import machine
from scale_bindsearch import measure_bindsearch, space_identity
from scale_data import write_size
from scale_peers import measure_chroma, measure_faiss_flat, measure_lancedb, peer_install
from scale_summary import summaries

SYSTEMS = {
    "bindsearch": measure_bindsearch,
    "faiss": measure_faiss_flat,
    "lancedb": measure_lancedb,
    "chroma": measure_chroma,
}


def sizes(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes takes whole numbers separated by commas, not {text!r}") from None
    if not values or min(values) < 10:
        raise argparse.ArgumentTypeError("--sizes needs at least one size, each of 10 vectors or more")
    return values


def systems(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in SYSTEMS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"--systems takes some of {', '.join(SYSTEMS)}, not {text!r}")
    return names


def log(message: str) -> None:
    print(f"scale {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=sizes, default=sizes("100000,300000,1000000"))
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--systems", type=systems, default=list(SYSTEMS), help="which of them to measure")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "bindsearch-scale"),
                        help="where the data goes (removed after)")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds a measuring process may take")
    args = parser.parse_args()
    if args.dim < 2 or args.queries < 1:
        parser.error("--dim must be 2 or more and --queries 1 or more")

    root = Path(args.dir)
    made_root = not root.exists()
    describe = machine()
    space, fingerprint = space_identity(args.dim)

    def emit(row: dict, n: int | None) -> None:
        # The load when a row is printed: on a shared machine, other work slows every figure.
        common = {"benchmark": "scale", "n": n, "dim": args.dim, "queries": args.queries, "machine": describe,
                  "load_1min": round(os.getloadavg()[0], 2)}
        print(json.dumps({**common, **row}), flush=True)

    try:
        if any(name in args.systems for name in ("lancedb", "chroma")):
            for row in peer_install():
                emit(row, None)
        for n in args.sizes:
            folder = root / f"n{n}"
            log(f"n={n}: writing the vectors and their exact top-10")
            started = time.perf_counter()
            data = write_size(folder, n, args.dim, args.queries, space, fingerprint)
            emit({"system": "data", "measure": "write", "write_s": round(time.perf_counter() - started, 2)}, n)
            rows: list[dict] = []
            try:
                for name in args.systems:
                    log(f"n={n}: {name}")
                    for row in SYSTEMS[name](data, folder, args.timeout):
                        emit(row, n)
                        rows.append(row)
                for row in summaries(rows):
                    emit(row, n)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if made_root:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
