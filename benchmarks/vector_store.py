"""How fast a vector file takes and gives back rows: appends made durable, random and streamed reads.

1. ``append``: ``--rows`` unit vectors of ``--dim`` values in batches of ``--batch``, each batch
   written and fsynced before the next (as a library's writer does before committing).
2. ``random_read``: ``VectorStore.read`` of 100 and 1000 random slots (median of ``--repeat``).
3. ``chunks``: every row streamed in slot order with ``VectorStore.chunks``; ``verify``: every
   row's CRC-32 checked; ``compact``: every other row copied into a new file.
4. ``rss``: how much this process grew while reading 1000 random rows.

Reads are timed twice: with the file in the page cache (``warm``), and after asking the system to
drop it from there (``cold``: posix_fadvise; a host's own cache may still hold it). The files
are deleted at the end. Prints one JSON object per measurement:

    python benchmarks/vector_store.py --rows 200000 --dim 1024
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine

from bindsearch.library.vector_store import VectorStore
from bindsearch.vectors import l2_normalize


def drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    row = {"benchmark": "vector_store", "rows": args.rows, "dim": args.dim, "machine": machine()}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bindsearch-bench-") as tmp:
        path = Path(tmp) / "image.f32"
        batches = [l2_normalize(rng.normal(size=(args.batch, args.dim))) for _ in range(4)]  # made untimed
        writing, crcs = 0.0, []
        with VectorStore(path, args.dim, writable=True) as store:
            for number, first in enumerate(range(0, args.rows, args.batch)):
                batch = batches[number % len(batches)][: args.rows - first]
                started = time.perf_counter()
                crcs.append(store.append(batch)[1])
                writing += time.perf_counter() - started
        file_mb = path.stat().st_size / 2**20

        def rates(measure: str, seconds: float, **extra: object) -> None:
            print(json.dumps({**row, "measure": measure, **extra, "seconds": round(seconds, 3),
                              "vectors_per_s": round(args.rows / seconds), "mb_per_s": round(file_mb / seconds)}))

        rates("append", writing, batch=args.batch)
        with VectorStore(path, args.dim) as store:
            for cache in ("warm", "cold"):
                for count in (100, 1000):
                    times = []
                    for _ in range(args.repeat):
                        slots = rng.integers(0, args.rows, count)
                        if cache == "cold":
                            drop_from_page_cache(path)
                        times.append(timed(lambda slots=slots: store.read(slots)))
                    print(json.dumps({**row, "measure": "random_read", "cache": cache, "slots": count,
                                      "median_ms": round(1000 * statistics.median(times), 2)}))
                if cache == "cold":
                    drop_from_page_cache(path)
                rates("chunks", timed(lambda: sum(block.shape[0] for block in store.chunks())), cache=cache)
            every, all_crcs = np.arange(args.rows), np.concatenate(crcs)
            rates("verify", timed(lambda: store.verify(every, all_crcs)), cache="warm")
            compacted: list[str] = []
            rates("compact", timed(lambda: compacted.append(store.compact(every[::2])[0])), cache="warm",
                  note="half the rows copied; rates are of the whole file")
            os.unlink(compacted[0])
            before = rss_kib()
            store.read(rng.integers(0, args.rows, 1000))
            print(json.dumps({**row, "measure": "rss", "slots": 1000, "file_mb": round(file_mb),
                              "rss_growth_kib": rss_kib() - before}))


if __name__ == "__main__":
    main()
