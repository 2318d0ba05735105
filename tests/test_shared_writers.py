"""Several index runs writing one library at once (PostgreSQL metadata, vectors in Milvus Lite served on
127.0.0.1): every file embedded once; a run killed at any point loses nothing committed and doubles nothing;
a killed run's claims are taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import draw_image

import bindsearch
from bindsearch.library.database import raw_cursor
from bindsearch.library.outbox import pending
from bindsearch.modality import Modality

SPACE = Path(__file__).resolve().parents[1] / "examples" / "tiny-imagebind.json"
TESTS = Path(__file__).resolve().parent

KILL_AT = r"""
import os, signal, sys
point, nth = sys.argv[1], int(sys.argv[2])
del sys.argv[1:3]
sys.argv[0] = "bindsearch"
calls = [0]

def nth_call():
    calls[0] += 1
    return calls[0] == nth

from bindsearch.library import milvus_vectors as V
from bindsearch.library import writer as W

if point == "before-flush":              # a batch is committed (rows and pending vectors), Milvus not written
    flush = V.MilvusVectors.flush
    def patched(self):
        if nth_call():
            os.kill(os.getpid(), signal.SIGKILL)
        return flush(self)
    V.MilvusVectors.flush = patched
elif point == "inside-transaction":      # a batch's rows are written, its transaction not committed
    bump = W._bump_generation
    def patched(*a, **k):
        bump(*a, **k)
        if nth_call():
            os.kill(os.getpid(), signal.SIGKILL)
    W._bump_generation = patched
elif point == "mid-apply":               # Milvus has part of a flush, the pending rows are not cleared
    apply = V.MilvusVectors.apply
    def patched(self, *a, **k):
        apply(self, *a, **k)
        if nth_call():
            os.kill(os.getpid(), signal.SIGKILL)
    V.MilvusVectors.apply = patched
from bindsearch.cli.app import main
main()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def milvus(tmp_path_factory):
    """Milvus Lite served over gRPC on 127.0.0.1, so that several processes share it (a Lite file is one
    process's)."""
    port = _free_port()
    data = tmp_path_factory.mktemp("milvus")
    with open(data / "server.log", "wb") as log:
        server = subprocess.Popen([str(Path(sys.executable).parent / "milvus-lite"), "server", "--data-dir",
                                   str(data), "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None, (data / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "Milvus Lite's server did not start"
            time.sleep(0.2)
    yield f"milvus://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def shared(tmp_path, postgres, milvus, monkeypatch):
    """A library file naming a new PostgreSQL database and the Milvus server, its library made (vectors in
    fp32 here as in the runs, to compare them)."""
    monkeypatch.setenv("BINDSEARCH_DTYPE", "fp32")
    path = tmp_path / "shared.json"
    bindsearch.init_library(path, postgres.new_database(), milvus, SPACE).close()
    return path


def images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    for i in range(n):
        draw_image(folder / f"i{i:03d}.png", seed=seed + i, size=(24, 24))
    return sorted(folder.iterdir())


def run_index(folder: Path, library: Path, *, kill_at: tuple[str, int] | None = None, slow: bool = False,
              env: dict | None = None) -> subprocess.Popen:
    prefix = [sys.executable, "-c", KILL_AT, *map(str, kill_at)] if kill_at else [sys.executable, "-m",
                                                                                  "bindsearch.cli"]
    extra = {"BINDSEARCH_DTYPE": "fp32", "PYTHONPATH": str(TESTS), **(env or {})}
    if slow:
        extra["BINDSEARCH_READ_HOOK"] = "read_hooks:slow"
    return subprocess.Popen([*prefix, "index", str(folder), "--library", str(library), "--workers", "0",
                             "--batch-size", "8", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **extra})


def finished(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out)


def check_every_file_once(library: Path, files: list[Path]) -> None:
    """One item per file, each vector in Milvus under its id and equal to what the file embeds to, no change
    left pending, no claim or run left registered."""
    space = bindsearch.load_space(SPACE)
    with bindsearch.open_library(library) as lib, raw_cursor(lib._engine) as cursor:
        rows = cursor.execute("SELECT id, path FROM items WHERE status = 'ok'").fetchall()
        assert sorted(os.fsdecode(bytes(p)) for _, p in rows) == [str(f) for f in files]
        assert cursor.execute("SELECT count(*) FROM claims").fetchone()[0] == 0
        assert cursor.execute("SELECT count(*) FROM writers").fetchone()[0] == 0
        assert pending(lib._engine) == 0
        collection = lib.vectors.collection((Modality.IMAGE, False))
        assert sorted(collection.ids().tolist()) == sorted(i for i, _ in rows)
        ids, stored = lib.stored_vectors(Modality.IMAGE)
        by_path = {path: stored[list(ids).index(i)] for i, (path, _) in lib.items(ids).items()}
        for f in files[:: max(1, len(files) // 8)]:
            np.testing.assert_allclose(by_path[str(f)], space.embed(Modality.IMAGE, f), atol=1e-5)
            hit = lib.search([bindsearch.QueryTerm.file("image", f)], targets=["image"], k=1)[0]
            assert hit.path == str(f) and hit.score == pytest.approx(1.0, abs=1e-5)


def test_two_runs_at_once_embed_every_file_once(tmp_path, shared):
    files = images(tmp_path / "media", 160)
    first, second = (run_index(tmp_path / "media", shared, slow=True) for _ in range(2))
    reports = [finished(first), finished(second)]
    assert sum(r["added"] for r in reports) == len(files)  # each file embedded by one of them
    assert all(r["added"] > 0 for r in reports), reports  # (both worked: the test shows sharing)
    for r in reports:
        assert r["added"] + r["left_to_others"] + r["unchanged"] == len(files) and r["failed"] == 0
    check_every_file_once(shared, files)
    again = finished(run_index(tmp_path / "media", shared))
    assert (again["unchanged"], again["added"], again["embedded"]) == (len(files), 0, 0)


@pytest.mark.parametrize(("point", "nth", "committed"), [
    ("before-flush", 3, 16),  # (the 1st flush is the writer's, of what earlier runs left: none)
    ("inside-transaction", 2, 8),
    ("mid-apply", 2, 16),
])
def test_sigkill_mid_batch_loses_nothing_committed_and_doubles_nothing(tmp_path, shared, point, nth, committed):
    files = images(tmp_path / "media", 40, seed=100)
    killed = run_index(tmp_path / "media", shared, kill_at=(point, nth))
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    with bindsearch.open_library(shared) as lib, raw_cursor(lib._engine) as cursor:
        assert cursor.execute("SELECT count(*) FROM items").fetchone()[0] == committed  # whole batches only
        left = pending(lib._engine)
    assert (left > 0) == (point != "inside-transaction")  # what the killed run committed and Milvus lacks
    report = finished(run_index(tmp_path / "media", shared))
    assert (report["unchanged"], report["added"], report["failed"]) == (committed, len(files) - committed, 0)
    check_every_file_once(shared, files)


def test_a_killed_runs_claims_are_taken_over(tmp_path, shared):
    files = images(tmp_path / "media", 40, seed=200)
    killed = run_index(tmp_path / "media", shared, kill_at=("before-flush", 2))  # dies holding 40 claims
    killed.communicate(timeout=300)
    with bindsearch.open_library(shared) as lib, raw_cursor(lib._engine) as cursor:
        assert cursor.execute("SELECT count(*) FROM claims").fetchone()[0] == len(files)
    report = finished(run_index(tmp_path / "media", shared))  # a process of this machine that is gone: at once
    assert report["added"] + report["unchanged"] == len(files) and report["left_to_others"] == 0
    check_every_file_once(shared, files)


def test_claims_of_a_run_on_another_machine_last_until_its_heartbeat_stops(tmp_path, shared):
    files = images(tmp_path / "media", 12, seed=300)
    with bindsearch.open_library(shared) as lib, raw_cursor(lib._engine) as cursor:
        now = time.time()
        cursor.execute("INSERT INTO writers (owner, heartbeat) VALUES (?, ?), (?, ?)",
                       ("elsewhere:1:live", now, "elsewhere:2:gone", now - 600))
        for n, f in enumerate(files[:6]):
            cursor.execute("INSERT INTO claims (path, modality, owner) VALUES (?, ?, ?)",
                           (os.fsencode(str(f)), "image", "elsewhere:1:live" if n < 3 else "elsewhere:2:gone"))
        cursor.raw.connection.commit()
    report = finished(run_index(tmp_path / "media", shared))
    assert (report["added"], report["left_to_others"]) == (9, 3)  # the live run's 3 are its own
    with bindsearch.open_library(shared) as lib, raw_cursor(lib._engine) as cursor:
        cursor.execute("UPDATE writers SET heartbeat = ? WHERE owner = ?", (time.time() - 600, "elsewhere:1:live"))
        cursor.raw.connection.commit()
    report = finished(run_index(tmp_path / "media", shared))  # its heartbeat stopped: they are taken over
    assert (report["added"], report["left_to_others"], report["unchanged"]) == (3, 0, 9)
