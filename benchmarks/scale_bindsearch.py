"""bindsearch's part of the scale benchmark: each measurement a function giving JSON rows.

A capability the library does not have yet (bulk import) is reported as skipped, and the
library is then filled through the writer, so that the measurements after it still run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from peers.measure import disk_bytes
from scale_data import SizeData
from scale_processes import MeasureFailed, bindsearch_child, measured, run_json_lines

import bindsearch

SYSTEM = "bindsearch"
# The files under a library's index/ folder that it rebuilds from its stored vectors when they are gone.
REBUILT_SUFFIXES = (".ivf",)


def space_spec(dim: int) -> dict:
    """An ImageBind space with random weights: its vectors are never computed here, only its identity
    and dimension matter, so no checkpoint is needed."""
    spec: dict = {"model": "imagebind", "checkpoint": None, "seed": 0}
    if dim != 1024:
        spec["config"] = {"out_embed_dim": dim}
    return spec


def space_identity(dim: int) -> tuple[str, str]:
    space = bindsearch.load_space(space_spec(dim))
    return space.name, space.fingerprint


def import_missing() -> str | None:
    """Why the bulk import cannot be measured, or None."""
    if not hasattr(bindsearch.Library, "import_vectors"):
        return "Library.import_vectors is missing from this bindsearch"
    return None


def import_rate(data: SizeData, library: Path, timeout: float | None = None) -> list[dict]:
    """Vectors per second of ``Library.import_vectors`` on the import file, in a process of its own. Without
    it, or if it fails, a skipped row, and the library is filled through the writer instead (with its rate)
    so that the measurements after it have vectors to search."""
    spec = json.dumps(space_spec(data.dim))
    reason = import_missing()
    if reason is None:
        rows = measured(SYSTEM, "import", lambda: run_json_lines(bindsearch_child(
            "import", "--library", library, "--space", spec, "--file", data.import_file, "--n", data.n), timeout))
        if "skipped" not in rows[0]:
            return rows
    else:
        rows = [{"system": SYSTEM, "measure": "import", "skipped": reason}]
    shutil.rmtree(library, ignore_errors=True)
    return rows + measured(SYSTEM, "fill_by_writer", lambda: run_json_lines(bindsearch_child(
        "fill", "--library", library, "--space", spec, "--vectors", data.vectors, "--n", data.n), timeout))


def disk_per_item(data: SizeData, library: Path) -> list[dict]:
    def measure() -> list[dict]:
        if not (library / "library.sqlite").exists():
            raise MeasureFailed("no library was made")
        total = disk_bytes(str(library))
        parts = {p.name: disk_bytes(str(p)) for p in sorted(library.iterdir())}
        return [{"bytes": total, "bytes_per_item": round(total / data.n, 1), "parts": parts}]

    return measured(SYSTEM, "disk", measure)


def bare_import_s(repeat: int = 3) -> list[dict]:
    """The best wall time of ``python -c "import bindsearch"``: the floor under any first query."""

    def measure() -> list[dict]:
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", "import bindsearch"], capture_output=True, text=True)
            if done.returncode != 0:
                raise MeasureFailed(f"import bindsearch failed: {done.stderr.strip().splitlines()[-1]}")
            best = min(best, time.perf_counter() - started)
        return [{"import_bindsearch_s": round(best, 3)}]

    return measured(SYSTEM, "bare_import", measure)


def query_process(data: SizeData, library: Path, timeout: float | None = None) -> list[dict]:
    """A new process opens the library and runs every query: first hits, RSS, p50/p95, recall@10."""
    return measured(SYSTEM, "query", lambda: run_json_lines(bindsearch_child(
        "query", "--library", library, "--queries", data.queries, "--truth", data.truth,
        "--started-at", "{started_at}"), timeout))


def rebuild_index(data: SizeData, library: Path, timeout: float | None = None) -> list[dict]:
    """Delete the index files, then a new process opens the library and queries once (which rebuilds them):
    its time and peak memory, and whether the files are back."""

    def measure() -> list[dict]:
        index_dir = library / "index"
        deleted = [p for p in index_dir.iterdir() if p.suffix in REBUILT_SUFFIXES] if index_dir.is_dir() else []
        if not deleted:
            raise MeasureFailed(f"no index file ({', '.join(REBUILT_SUFFIXES)}) under {index_dir} to delete")
        for path in deleted:
            path.unlink()
        out = run_json_lines(bindsearch_child("rebuild", "--library", library, "--queries", data.queries,
                                              "--started-at", "{started_at}"), timeout)
        back = sorted(p.name for p in index_dir.iterdir() if p.suffix in REBUILT_SUFFIXES)
        return [{**row, "deleted": sorted(p.name for p in deleted), "rebuilt_files": back} for row in out]

    return measured(SYSTEM, "rebuild", measure)


def measure_bindsearch(data: SizeData, folder: Path, timeout: float | None = None) -> list[dict]:
    """Every bindsearch measurement at one size, on a library made in ``folder`` and removed after."""
    library = folder / "bindsearch-library"
    try:
        rows = import_rate(data, library, timeout)
        data.import_file.unlink(missing_ok=True)  # read once; at 1M it is 4 GB of disk
        rows += disk_per_item(data, library)
        if (library / "library.sqlite").exists():
            rows += bare_import_s()
            rows += query_process(data, library, timeout)
            rows += rebuild_index(data, library, timeout)
        return rows
    finally:
        shutil.rmtree(library, ignore_errors=True)
