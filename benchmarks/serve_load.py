"""Load on a running ``bindsearch serve``: searches over real HTTP against a library of ``--items`` vectors.

1. Builds (once per run, in a temporary folder) a library bound to a tiny random ImageBind space whose
   vectors have 1024 dimensions, as ImageBind-Huge's do: ``--items`` synthetic image vectors (search cost
   does not depend on where vectors came from; they get an approximate index, as a real library of that
   size does) plus the real files of ``examples/media`` (for thumbnails). The tiny text tower embeds a
   text in about a millisecond, so what is measured is the server and the search, not the model.
2. Starts ``bindsearch serve`` as its own process on a free loopback port.
3. Measures, with an asyncio httpx client:
   - ``POST /api/search`` with a text term, one client, one request after another: end-to-end latency;
   - the same with ``--clients`` clients at once for ``--seconds``: errors, p50, p95, p99, requests/s;
   - ``GET /api/items/{id}/thumbnail`` once made (cached): latency.

Prints one JSON object per measurement:

    python benchmarks/serve_load.py --items 100000 --clients 20 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from common import machine

import bindsearch
from bindsearch.modality import Modality
from bindsearch.vectors import l2_normalize

REPO = Path(__file__).resolve().parent.parent
WORDS = ["a dog", "a red car", "the beach at sunset", "a rocket launch", "coffee on a table", "a cat asleep",
         "rain on a window", "a crowded street", "mountains in snow", "a child laughing"]


def space_file(folder: Path) -> Path:
    spec = json.loads((REPO / "examples" / "tiny-imagebind.json").read_text())
    spec["config"]["out_embed_dim"] = 1024
    path = folder / "space.json"
    path.write_text(json.dumps(spec))
    return path


def build_library(folder: Path, items: int) -> Path:
    library = folder / "lib"
    rng = np.random.default_rng(0)
    with bindsearch.open_library(library, str(space_file(folder)), create=True) as lib:
        with lib.writer() as writer:
            centre = l2_normalize(rng.normal(size=lib.dim))
            for begin in range(0, items, 10_000):
                block = l2_normalize(rng.normal(size=(min(10_000, items - begin), lib.dim)) + 4 * centre)
                for i, vector in enumerate(block.astype(np.float32)):
                    j = begin + i
                    writer.put(f"/data/image/{j:07d}.jpg", Modality.IMAGE, 1000 + j, j, f"image{j}", vector)
                writer.commit()
        media = folder / "media"
        shutil.copytree(REPO / "examples" / "media", media)
        lib.index([media], workers=0)
    return library


def start_server(library: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "bindsearch.cli", "serve", "--library", str(library),
                                "--port", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = library / "serve.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            record = json.loads(state.read_text())
            if record["pid"] == process.pid:
                return process, record["url"].rstrip("/")
        except (OSError, ValueError, KeyError):
            pass
        if process.poll() is not None:
            raise SystemExit(f"bindsearch serve exited: {process.stderr.read().decode()}")
        time.sleep(0.05)
    raise SystemExit("bindsearch serve did not start")


def percentiles(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1000
    return {f"p{q}_ms": round(float(np.percentile(a, q)), 2) for q in (50, 95, 99)} | {"n": len(samples)}


async def one_client(url: str, rounds: int) -> tuple[list[float], list[float]]:
    latencies, took = [], []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for n in range(rounds):
            body = {"terms": [{"modality": "text", "value": f"{WORDS[n % len(WORDS)]} {n}"}], "targets": ["image"],
                    "k": 10}
            started = time.perf_counter()
            response = await client.post("/api/search", json=body)
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            took.append(response.json()["took_ms"] / 1000)
    return latencies, took


async def many_clients(url: str, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    async def client_loop(c: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            n = 0
            while time.perf_counter() < deadline:
                body = {"terms": [{"value": f"{WORDS[(c + n) % len(WORDS)]} {c}-{n}"}], "targets": ["image"], "k": 10}
                started = time.perf_counter()
                try:
                    response = await client.post("/api/search", json=body)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code}: {response.text[:100]}")
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                latencies.append(time.perf_counter() - started)
                n += 1

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(c) for c in range(clients)))
    wall = time.perf_counter() - started
    return percentiles(latencies) | {"errors": len(errors), "first_errors": errors[:3],
                                     "requests_per_s": round(len(latencies) / wall, 1)}


async def thumbnails(url: str, library: Path, rounds: int) -> dict:
    with bindsearch.open_library(library) as lib:
        item_id = lib.stored_item_vector(str(library.parent / "media" / "astronaut.jpg"))[0][0]
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        started = time.perf_counter()
        (await client.get(f"/api/items/{item_id}/thumbnail")).raise_for_status()
        first = time.perf_counter() - started
        latencies = []
        for _ in range(rounds):
            started = time.perf_counter()
            (await client.get(f"/api/items/{item_id}/thumbnail")).raise_for_status()
            latencies.append(time.perf_counter() - started)
    return percentiles(latencies) | {"first_ms": round(first * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bindsearch-serve-bench-"))
    base = {"benchmark": "serve_load", "items": args.items, "machine": machine()}
    try:
        started = time.perf_counter()
        library = build_library(folder, args.items)
        print(json.dumps(base | {"measure": "build_library_s", "value": round(time.perf_counter() - started, 1)}),
              flush=True)
        process, url = start_server(library)
        try:
            asyncio.run(one_client(url, 30))  # warm: the text tower loaded, the index read
            latencies, took = asyncio.run(one_client(url, args.rounds))
            print(json.dumps(base | {"measure": "search_text_one_client", **percentiles(latencies),
                                     "server_took_p50_ms": percentiles(took)["p50_ms"]}), flush=True)
            loaded = asyncio.run(many_clients(url, args.clients, args.seconds))
            print(json.dumps(base | {"measure": "search_text_concurrent", "clients": args.clients,
                                     "seconds": args.seconds, **loaded}), flush=True)
            print(json.dumps(base | {"measure": "thumbnail_cached", **asyncio.run(thumbnails(url, library, 300))}),
                  flush=True)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("BINDSEARCH_OFFLINE", "1")
    main()
