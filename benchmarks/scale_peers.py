"""The peers' part of the scale benchmark: exact flat FAISS, LanceDB and Chroma on the same files.

FAISS runs in this script's environment (bindsearch depends on it); LanceDB and Chroma run in
benchmarks/peers/.venv (made by benchmarks/peers/setup.sh), each step a process of its own:
build (import rate, disk), a sweep of search settings (recall against latency), then a fresh
query process with the fastest setting that reaches the target recall (first query, memory).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from peers.measure import disk_bytes
from scale_data import SizeData
from scale_processes import HERE, PEERS_PYTHON, MeasureFailed, measured, peer_child, peers_missing, run_json_lines


def measure_faiss_flat(data: SizeData, folder: Path, timeout: float | None = None) -> list[dict]:
    command = [sys.executable, str(HERE / "scale_faiss_child.py"), "query", "--vectors", str(data.vectors),
               "--queries", str(data.queries), "--truth", str(data.truth)]
    return measured("faiss_flat", "query", lambda: run_json_lines(command, timeout))


def _peer(system: str, script: str, data: SizeData, store: Path, variants: dict[str, bool],
          timeout: float | None, stores_setting: bool = False) -> list[dict]:
    """Build ``store`` with ``script``, then per variant (name -> whether it has settings to sweep) a sweep
    where it has one, and a query process; the store is removed after. A peer that ``stores_setting`` with
    its data is configured by a process of its own, so that the query process only opens and searches."""
    missing = peers_missing()
    if missing:
        return [{"system": f"{system}_{v}" if v else system, "measure": "all", "skipped": missing}
                for v in ("", *variants)]
    files = ["--queries", data.queries, "--truth", data.truth]
    try:
        rows = measured(system, "build", lambda: run_json_lines(
            peer_child(script, "build", "--vectors", data.vectors, "--store", store), timeout))
        if any("skipped" in row for row in rows):
            return rows
        # Measured once the building process is gone: what it had still to write is on disk by then.
        total = disk_bytes(str(store))
        rows.append({"system": system, "measure": "disk", "bytes": total, "bytes_per_item": round(total / data.n, 1)})
        for variant, sweeps in variants.items():
            name = f"{system}_{variant}"
            setting: dict = {}
            if sweeps:
                sweep = measured(name, "sweep", lambda v=variant: run_json_lines(
                    peer_child(script, "sweep", "--store", store, *files, "--variant", v), timeout))
                rows += sweep
                chosen = [row for row in sweep if row.get("measure") == "chosen"]
                if not chosen:
                    continue
                setting = chosen[0]["setting"]
            if stores_setting:
                configure = measured(name, "configure", lambda s=setting: run_json_lines(
                    peer_child(script, "configure", "--store", store, "--setting", json.dumps(s)), timeout))
                if any("skipped" in row for row in configure):
                    rows += configure
                    continue
            rows += measured(name, "query", lambda v=variant, s=setting: run_json_lines(
                peer_child(script, "query", "--store", store, *files, "--variant", v, "--setting", json.dumps(s),
                           "--started-at", "{started_at}"), timeout))
        return rows
    finally:
        shutil.rmtree(store, ignore_errors=True)


def measure_lancedb(data: SizeData, folder: Path, timeout: float | None = None) -> list[dict]:
    return _peer("lancedb", "lancedb_run.py", data, folder / "lancedb", {"ivf_pq": True, "brute_force": False},
                 timeout)


def measure_chroma(data: SizeData, folder: Path, timeout: float | None = None) -> list[dict]:
    return _peer("chroma", "chroma_run.py", data, folder / "chroma", {"hnsw": True}, timeout, stores_setting=True)


def peer_install() -> list[dict]:
    """What benchmarks/peers/setup.sh recorded of the peers' install (time, disk, versions)."""
    record = PEERS_PYTHON.parent.parent / "install.json"

    def measure() -> list[dict]:
        if not record.exists():
            raise MeasureFailed(peers_missing() or f"{record} is missing: run benchmarks/peers/setup.sh again")
        return [json.loads(record.read_text())]

    return measured("peers", "peer_install", measure)
