"""A full disk, for real: a library on a small tmpfs, filled up to a few KiB while a run writes to it.

Whatever write hits the end of the disk (SQLite's commit, its journal, a FAISS file, the creation of
the library), the run says in one line that the disk is full, what is kept and what to do (exit 2);
what was committed before is intact, and once there is room again the same command finishes the job.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, draw_image

import bindsearch
from bindsearch.errors import DiskFullError
from bindsearch.modality import Modality

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"
DISK_FULL = re.compile(
    r"^error: the disk holding library (?P<lib>\S+) is full \(\d+ KiB free\): (?P<kept>[^;]+); "
    r"free some space and run the same command again$"
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mounts a tmpfs (Linux)")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip() or done.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path, leave_kib: int) -> Path:
    """A file that takes all the room on ``disk`` but ``leave_kib`` KiB."""
    st = os.statvfs(disk)
    size = st.f_bavail * st.f_frsize - leave_kib * 1024
    filler = disk / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(size, 0))
    return filler


def index_cli(folder: Path, lib: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bindsearch.cli", "index", str(folder), "--library", str(lib),
                           "--space", str(TINY_IMAGEBIND), "--batch-size", "4", "--workers", "0", "--json"],
                          capture_output=True, text=True, timeout=600)


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if "RANDOM weights" not in line]  # the random space says so


@pytest.mark.parametrize("leave_kib", [8, 40, 200])  # the journal cannot be made / a commit fails / a FAISS save
def test_a_disk_that_fills_up_while_indexing_is_named_and_nothing_committed_is_lost(
        leave_kib: int, small_disk: Path, tmp_path: Path) -> None:
    folder, lib = tmp_path / "media", small_disk / "lib"
    for i in range(40):
        draw_image(folder / f"p{i:02d}.png", seed=i, size=(32, 32))
    first = tmp_path / "first"
    draw_image(first / "a.png", seed=99)
    assert index_cli(first, lib).returncode == 0
    filler = fill(small_disk, leave_kib)

    done = index_cli(folder, lib)
    assert "Traceback" not in done.stderr
    lines = error_lines(done)
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and (match := DISK_FULL.match(lines[0])), done.stderr
    assert match["lib"] == str(lib)
    assert match["kept"] in ("every batch committed before is kept, the one being written is not",
                             "nothing was changed")
    assert done.stdout == ""

    filler.unlink()  # room again: what was committed is all there, and the same command finishes
    with bindsearch.open_library(lib) as library:
        ids, vectors = library.stored_vectors(Modality.IMAGE)
        committed = len(ids)
        index = library.vector_index(Modality.IMAGE)
        assert sorted(index.ids().tolist()) == sorted(ids.tolist())
        for item_id, vector in zip(ids, vectors):
            np.testing.assert_array_equal(index.index.reconstruct(int(item_id)), vector)
    assert 1 <= committed <= 41
    again = index_cli(folder, lib)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["added"], report["unchanged"]) == (41 - committed, committed - 1), report
    with bindsearch.open_library(lib) as library:
        assert library.counts()[Modality.IMAGE] == 41


def test_creating_a_library_on_a_full_disk_is_named(small_disk: Path, tmp_path: Path) -> None:
    draw_image(tmp_path / "media" / "a.png", seed=1)
    fill(small_disk, 0)
    done = index_cli(tmp_path / "media", small_disk / "lib")
    lines = error_lines(done)
    assert "Traceback" not in done.stderr
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and (match := DISK_FULL.match(lines[0])), done.stderr
    assert match["kept"] == "no library was made"
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no half-made library left


def test_tagging_or_removing_on_a_full_disk_is_named_and_changes_nothing(small_disk: Path, tmp_path: Path) -> None:
    """A library opened while there was room, then changed once the disk is full (a CLI run on a disk
    already full stops at the open, with "nothing was changed")."""
    folder, lib = tmp_path / "media", small_disk / "lib"
    for i in range(3):
        draw_image(folder / f"p{i}.png", seed=i, size=(32, 32))
    assert index_cli(folder, lib).returncode == 0
    with bindsearch.open_library(lib) as library:
        library.counts()
        filler = fill(small_disk, 0)
        with pytest.raises(DiskFullError) as tagging:
            library.tag([folder], add=[f"tag-{i}" for i in range(2000)])
        with pytest.raises(DiskFullError) as removing:
            library.remove([folder / "p1.png"])
    for raised, kept in ((tagging, "no tag was changed"), (removing, "nothing was removed")):
        match = DISK_FULL.match(f"error: {raised.value}")
        assert match and match["kept"] == kept, raised.value
    filler.unlink()
    with bindsearch.open_library(lib) as library:
        assert library.counts()[Modality.IMAGE] == 3  # nothing removed
        assert library.tags_of([1, 2, 3]) == {}  # no tag added
