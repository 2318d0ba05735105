"""What every process of the scale benchmark measures the same way, with nothing but NumPy.

The peers run in a virtual environment of their own (no bindsearch there), so the
reader of the shared vector files, the memory figures, the latency summary and the
query protocol live here, where both environments can import them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np

# clustered.py (one folder up, NumPy only) holds the recall measure every system is scored with.
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from clustered import recall_at_k

READ_ROWS = 50_000


def proc_status_kib(field: str, status_file: str = "/proc/self/status") -> int | None:
    """A ``kB`` field of /proc/<pid>/status (``VmRSS``: resident now, ``VmHWM``: the peak), in KiB."""
    try:
        with open(status_file) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def memory_mib() -> dict[str, float | None]:
    """This process's resident memory now and at its peak, in MiB."""
    rss, hwm = proc_status_kib("VmRSS"), proc_status_kib("VmHWM")
    return {"rss_mib": None if rss is None else round(rss / 1024, 1),
            "peak_rss_mib": None if hwm is None else round(hwm / 1024, 1)}


def rows(npy_path: str, chunk: int = READ_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """(start, block) of a 2-d ``.npy`` file, ``chunk`` rows at a time, each block a copy in memory.

    Each block comes from a map of its own that is closed before the next: a map kept open would
    leave every page read resident in this process and count the whole file in its RSS.
    """
    n = int(np.load(npy_path, mmap_mode="r").shape[0])
    for start in range(0, n, chunk):
        mapped = np.load(npy_path, mmap_mode="r")
        block = np.array(mapped[start : start + chunk])
        del mapped
        yield start, block


def latency_ms(times_s: list[float]) -> dict[str, float]:
    """p50 and p95 of per-query wall times (seconds in, milliseconds out), nearest-rank."""
    if not times_s:
        raise ValueError("no query times to summarise")
    ordered = np.sort(np.asarray(times_s, dtype=np.float64))
    rank = lambda q: ordered[min(len(ordered) - 1, int(np.ceil(q * len(ordered))) - 1)]  # noqa: E731
    return {"p50_ms": round(1000 * float(rank(0.50)), 3), "p95_ms": round(1000 * float(rank(0.95)), 3)}


def timed_queries(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, k: int,
                  warmup: int = 10) -> tuple[np.ndarray, list[float]]:
    """Run ``search(query) -> ids`` on each query in turn: the (m, k) ids found (-1 where fewer) and
    each query's wall time. ``warmup`` queries (the first ones, again) run before any is timed."""
    if queries.ndim != 2:
        raise ValueError(f"queries must be (m, dim), got {queries.shape}")
    for q in queries[:warmup]:
        search(q)
    found = np.full((len(queries), k), -1, dtype=np.int64)
    times = []
    for i, q in enumerate(queries):
        started = time.perf_counter()
        ids = np.asarray(search(q), dtype=np.int64)[:k]
        times.append(time.perf_counter() - started)
        found[i, : len(ids)] = ids
    return found, times


def disk_bytes(path: str) -> int:
    """Bytes allocated on disk under ``path`` (as ``du`` counts them: blocks, each inode once)."""
    if not os.path.isdir(path):
        try:
            return os.lstat(path).st_blocks * 512
        except OSError:
            return 0
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, _, files in os.walk(path):
        for name in [*files, ""]:
            try:
                st = os.lstat(os.path.join(folder, name) if name else folder)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def since_start(started_at: float) -> float:
    """Seconds of wall time from ``started_at`` (a ``time.time()`` taken by the parent before it
    started this process) to now."""
    return round(time.time() - started_at, 3)


def query_run(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, truth: np.ndarray,
              started_at: float | None, warmup: int = 10) -> dict:
    """What a query process reports, the same for every system: the wall time from its start to the first
    hits, resident memory after the warm-up and at its peak, p50/p95 latency and recall@k of every query."""
    out: dict = {}
    search(queries[0])
    if started_at is not None:
        out["first_query_s"] = since_start(started_at)
    for q in queries[:warmup]:
        search(q)
    out["rss_after_warmup_mib"] = memory_mib()["rss_mib"]
    found, times = timed_queries(search, queries, truth.shape[1], warmup=0)
    out.update(latency_ms(times))
    out["recall_at_10"] = round(recall_at_k(found, truth), 4)
    out["peak_rss_mib"] = memory_mib()["peak_rss_mib"]
    return out


def sweep_point(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, truth: np.ndarray,
                warmup: int = 10) -> dict:
    """Recall@k and p50/p95 of one search setting (no memory figures: a sweep runs many in one process)."""
    found, times = timed_queries(search, queries, truth.shape[1], warmup=warmup)
    return {"recall_at_10": round(recall_at_k(found, truth), 4), **latency_ms(times)}


def pick_setting(points: list[dict], target: float) -> dict:
    """The sweep point of lowest p50 among those whose recall reaches ``target``, with ``reached`` True;
    if none does, the one of highest recall (then lowest p50), with ``reached`` False."""
    if not points:
        raise ValueError("an empty sweep has no setting to pick")
    good = [p for p in points if p["recall_at_10"] >= target]
    if good:
        return {**min(good, key=lambda p: p["p50_ms"]), "reached": True}
    return {**min(points, key=lambda p: (-p["recall_at_10"], p["p50_ms"])), "reached": False}
