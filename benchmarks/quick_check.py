"""What SQLite's quick check costs at the start of an index run: PRAGMA quick_check on a library of N items.

The library's rows are inserted straight into its SQLite database: N items of
made-up paths with random unit vectors of the space's dimension (1024 as the
huge ImageBind, 32 as the tiny test space); no model runs and no media file is
needed, since the check only reads the database. It is cached under the temp folder. Each check runs
in this process on a new connection, the first of a series only warming the
page cache; ``integrity_check`` (which also matches every index against its
table) is timed once beside it. Prints one JSON object per dimension:

    python benchmarks/quick_check.py                     # 100 000 items, dims 1024 and 32, 5 runs
    python benchmarks/quick_check.py --items 10000 --dims 32 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import TINY, machine

from bindsearch import Library
from bindsearch.library.integrity import damage


def space_of(dim: int) -> dict:
    return {"model": "imagebind", "checkpoint": None, "seed": 0, "config": {**TINY, "out_embed_dim": dim}}


def fill(lib_path: Path, n: int, dim: int) -> None:
    """Rows as a run writes them (items, vectors, a tag on one item in ten), inserted straight into SQLite:
    the writer would also keep a FAISS index, which the check does not read."""
    rng = np.random.default_rng(0)
    Library.open(lib_path, space_of(dim), create=True).close()
    db = sqlite3.connect(lib_path / "library.sqlite")
    with db:
        for begin in range(0, n, 5000):
            ids = range(begin + 1, min(begin + 5000, n) + 1)
            vectors = rng.standard_normal((len(ids), dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            db.executemany(
                "INSERT INTO items (id, path, modality, size, mtime_ns, content_hash, status, error, indexed_at,"
                " window_count, duration) VALUES (?, ?, 'image', ?, ?, ?, 'ok', NULL, 0, NULL, NULL)",
                [(i, os.fsencode(f"/photos/group{i // 10000:02d}/folder{i // 1000:03d}/file{i:07d}.png"),
                  100_000 + i, 1_700_000_000_000_000_000 + i, f"{i:064x}") for i in ids])
            db.executemany("INSERT INTO vectors (item_id, data) VALUES (?, ?)",
                           [(i, v.astype("<f4").tobytes()) for i, v in zip(ids, vectors)])
            db.executemany("INSERT INTO tags (item_id, tag) VALUES (?, 'tagged')", [(i,) for i in ids if i % 10 == 0])
        db.execute("INSERT INTO meta (key, value) VALUES ('generation:image', '1')")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def prepare(n: int, dim: int, cache: Path, rebuild: bool) -> tuple[Path, float]:
    base = cache / f"n{n}-d{dim}"
    ready = base / "ready"
    if ready.exists() and not rebuild:
        return base / "library", 0.0
    started = time.perf_counter()
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    fill(base / "library", n, dim)
    ready.write_text("ok\n")
    return base / "library", time.perf_counter() - started


def timed(db: Path, pragma: str | None) -> float:
    conn = sqlite3.connect(db)
    try:
        started = time.perf_counter()
        if pragma is None:
            problem = damage(conn)
        else:
            problem = conn.execute(pragma).fetchone()[0]
            problem = None if problem == "ok" else problem
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    if problem is not None:
        raise SystemExit(f"{db}: the check found damage in a library just made: {problem}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[1024, 32])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bindsearch-bench-quick-check")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    where = machine()
    for dim in args.dims:
        lib_path, setup_s = prepare(args.items, dim, args.cache, args.rebuild)
        db = lib_path / "library.sqlite"
        times = [timed(db, None) for _ in range(args.runs + 1)][1:]
        print(json.dumps({
            "benchmark": "quick_check", "items": args.items, "dim": dim, "machine": where,
            "db_mib": round(os.path.getsize(db) / 2**20, 1), "runs": len(times),
            "quick_check_min_s": round(min(times), 3), "quick_check_median_s": round(statistics.median(times), 3),
            "integrity_check_s": round(timed(db, "PRAGMA integrity_check"), 3), "setup_s": round(setup_s, 1),
        }), flush=True)


if __name__ == "__main__":
    main()
