"""Ctrl-C at any moment of a run with workers: one line on stderr and exit status 130, never a traceback.

The terminal sends SIGINT to the whole process group, workers included; here the test does the same
(the run is started in a session of its own) while the workers are still starting, and a little later.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, draw_image

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"
INTERRUPTED = ("interrupted: what was done is saved; run the same command again to finish", "error: interrupted")

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the workers through /proc")


def children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(name))
        except (OSError, ValueError, IndexError):
            continue
    return found


@pytest.mark.parametrize("delay", [0.0, 0.3, 1.0])  # seconds after the first worker process appears
def test_ctrl_c_while_workers_start_prints_one_line_and_exits_130(delay: float, tmp_path: Path) -> None:
    folder = tmp_path / "media"
    for i in range(60):  # enough files for workers
        draw_image(folder / f"p{i:02d}.png", seed=i, size=(48, 40))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bindsearch.cli", "index", str(folder), "--library", str(tmp_path / "lib"),
         "--space", str(TINY_IMAGEBIND), "--workers", "2", "--batch-size", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        # The first child is the resource tracker, then come the workers: wait for the first worker.
        while len(children(proc.pid)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before its workers started: the test proves nothing"
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGINT)  # as the terminal does: every process of the group
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if "RANDOM weights" not in line]  # the random space says so
    assert proc.returncode == 130, stderr
    assert lines and lines[-1] in INTERRUPTED, stderr
    assert len([line for line in lines if line not in INTERRUPTED and not line.startswith("added ")]) == 0, stderr
