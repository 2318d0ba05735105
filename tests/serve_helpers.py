"""A demo library of every modality, and `bindsearch serve` run as a real process on a free loopback port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from helpers import EXAMPLE_MEDIA, REPO

import bindsearch

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"
# Debian's Chromium (.ci/run installs it), headless: Playwright's own browser download is not used.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def demo_library(folder: Path) -> Path:
    """``examples/media`` copied into ``folder/media`` and indexed into ``folder/lib`` with the tiny random
    ImageBind space (all modalities); the library's path. Rankings mean nothing, except that an item's own
    file ranks itself first."""
    media = folder / "media"
    if not media.exists():
        shutil.copytree(EXAMPLE_MEDIA, media)
    with bindsearch.open_library(folder / "lib", str(TINY_IMAGEBIND), create=True) as lib:
        lib.index([media], workers=0)
    return folder / "lib"


@dataclass
class ServerProcess:
    url: str  # http://127.0.0.1:PORT (no trailing slash)
    token: str | None
    process: subprocess.Popen
    library: Path

    def client(self, **options: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **options)

    def stderr(self) -> str:
        return self.process.stderr.read().decode() if self.process.stderr and self.process.poll() is not None else ""


@contextmanager
def running_server(library: Path, *extra_args: str, token: str | None = None,
                   env: dict[str, str] | None = None, timeout: float = 120) -> Iterator[ServerProcess]:
    """``bindsearch serve --library LIBRARY --port 0 EXTRA_ARGS`` until the block ends (then Ctrl+C, as a user
    stops it). Waits for the server's state file and for ``/api/info`` to answer."""
    args = [sys.executable, "-m", "bindsearch.cli", "serve", "--library", str(library), "--port", "0", *extra_args]
    if token is not None:
        args += ["--token", token]
    state = Path(library) / "serve.json"
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + timeout
        record = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"bindsearch serve exited with {process.returncode}:\n"
                                     f"{process.stderr.read().decode()}")
            try:
                record = json.loads(state.read_text())
                if record.get("pid") == process.pid:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        else:
            raise AssertionError("bindsearch serve did not start in time")
        server = ServerProcess(record["url"].rstrip("/"), token, process, Path(library))
        with server.client() as client:
            while client.get("/api/info").status_code != 200:
                if time.monotonic() > deadline:
                    raise AssertionError("bindsearch serve does not answer /api/info")
                time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
