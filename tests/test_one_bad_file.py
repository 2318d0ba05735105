"""One bad file costs one file: odd dates, folders too deep for the system, files that kill their reader.

Each file here breaks something below bindsearch (SQLite's integers, the kernel's PATH_MAX, the
reading process itself); the run must record that file, with a named reason, and index the rest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, draw_image

import bindsearch
from bindsearch.modality import Modality

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"
YEAR_2300_NS = 10_413_792_000 * 10**9  # 2300-01-01 UTC, past the last nanosecond a signed 64-bit integer holds


def index(folder: Path, lib: Path, **options: object) -> bindsearch.IndexReport:
    with bindsearch.open_library(lib, TINY_IMAGEBIND, create=True) as library:
        return library.index([folder], batch_size=4, **options)


def test_a_file_dated_after_2262_fails_alone_and_the_run_finishes(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    for i in range(6):
        draw_image(folder / f"p{i}.png", seed=i)
    os.utime(folder / "p2.png", ns=(YEAR_2300_NS, YEAR_2300_NS))  # as `touch -d 2300-01-01` does
    report = index(folder, tmp_path / "lib", workers=0)
    assert [(Path(e.path).name, e.reason) for e in report.errors] == [
        ("p2.png", "its modification time lies after 2262, which cannot be recorded; give it a real date (touch FILE)")
    ]
    assert (report.added, report.failed) == (5, 1)
    # The next run records it again (it is still dated so) and finishes too; nothing else is redone.
    again = index(folder, tmp_path / "lib", workers=0)
    assert (again.unchanged, again.failed, again.embedded) == (5, 1, 0), again


def make_deeper_than_path_max(top: Path) -> str:
    """Folders nested beyond PATH_MAX (made through directory descriptors), an image at the bottom;
    returns the path of the first folder whose path is too long."""
    limit = os.pathconf(str(top), "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096
    fd = os.open(top, os.O_RDONLY)
    path, first_too_long = str(top), None
    try:
        while len(path) <= limit + 300:
            name = f"d{len(path)}".ljust(200, "x")
            os.mkdir(name, dir_fd=fd)
            deeper = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd, path = deeper, f"{path}/{name}"
            if first_too_long is None and len(path) >= limit:
                first_too_long = path
        image = os.open("deep.png", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
        os.write(image, draw_image(top.parent / "shallow.png", seed=9).read_bytes())
        os.close(image)
    finally:
        os.close(fd)
    assert first_too_long is not None
    return first_too_long


def test_a_folder_deeper_than_path_max_is_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    draw_image(folder / "top.png", seed=1)
    too_long = make_deeper_than_path_max(folder)
    report = index(folder, tmp_path / "lib", workers=0)
    assert report.added == 1, report
    assert [(e.path, e.reason) for e in report.errors] == [
        (too_long, "folder not indexed: its path is longer than the system allows (PATH_MAX)")
    ]


# -- a file that takes its reading process down -----------------------------------------------------
# read_hooks.misbehave (BINDSEARCH_READ_HOOK) runs in every process before it reads a file: on "kill-*" the
# process SIGKILLs itself (as the out-of-memory killer does), on "segv-*" it dies of SIGSEGV (as a crashing C
# decoder does), on "oom-*" it raises MemoryError. Tests that keep pytest's own process alive make sure such a
# file is read by a worker.

HOOK = {"BINDSEARCH_READ_HOOK": "read_hooks:misbehave"}
KILLED = "ran out of memory while decoding (the process reading it was killed by SIGKILL)"
SEGFAULT = "the decoder crashed the process reading it (segmentation fault)"


def test_reading_workers_that_die_cost_only_their_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers that only read (as beside a GPU): the files in flight when one dies are read again one by one."""
    from bindsearch.indexer.pipeline import Preparer, Task, TaskQueue

    for name, value in HOOK.items():
        monkeypatch.setenv(name, value)  # spawned workers inherit it
    names = [f"p{i}.png" for i in range(12)]
    names[1], names[5] = "kill-1.png", "segv-5.png"  # among the first tasks: always read by a worker
    paths = [draw_image(tmp_path / name, seed=i) for i, name in enumerate(names)]
    space = bindsearch.load_space(TINY_IMAGEBIND)
    preparer = Preparer(space, set(), workers=2, window=6)
    results = list(preparer.run(TaskQueue(Task(i, str(p), Modality.IMAGE, None) for i, p in enumerate(paths))))
    assert sorted(r.index for r in results) == list(range(12))  # every file once, none lost with a worker
    reasons = {names[r.index]: r.reason for r in results if r.reason is not None}
    assert reasons == {"kill-1.png": KILLED, "segv-5.png": SEGFAULT}
    assert all(r.prepared is not None for r in results if r.reason is None)


def test_a_worker_killed_while_embedding_costs_one_file_and_the_run_goes_on(tmp_path: Path) -> None:
    """``bindsearch index`` on a CPU (workers read and embed), one file of which kills its worker, one crashes
    it and one runs out of memory: exactly those three fail, with their reasons, and everything else is in."""
    folder = tmp_path / "media"
    names = [f"p{i:02d}.png" for i in range(52)]
    names[3], names[30], names[41] = "kill-03.png", "segv-30.png", "oom-41.png"
    for i, name in enumerate(names):
        draw_image(folder / name, seed=100 + i, size=(48, 40))
    env = {**os.environ, **HOOK, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", "index", str(folder), "--library",
                           str(tmp_path / "lib"), "--space", str(TINY_IMAGEBIND), "--workers", "2",
                           "--batch-size", "4", "--json"], capture_output=True, text=True, timeout=600, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert {Path(e["path"]).name: e["reason"] for e in report["errors"]} == {
        "kill-03.png": KILLED, "segv-30.png": SEGFAULT, "oom-41.png": "ran out of memory while decoding",
    }
    assert (report["added"], report["failed"]) == (49, 3), report
    with bindsearch.open_library(tmp_path / "lib") as library:
        ids, _ = library.stored_vectors(Modality.IMAGE)
        assert len(ids) == 49
        assert {Path(f.path).name for f in library.info().failed} == {"kill-03.png", "segv-30.png", "oom-41.png"}


def _index_cli(folder: Path, lib: Path, *options: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **HOOK, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "bindsearch.cli", "index", str(folder), "--library", str(lib),
                           "--space", str(TINY_IMAGEBIND), "--batch-size", "2", "--json", *options],
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.parametrize("culprit, reason", [("segv-c.png", SEGFAULT), ("kill-c.png", KILLED)])
def test_a_file_that_kills_the_main_process_fails_in_the_next_run(tmp_path: Path, culprit: str, reason: str) -> None:
    """A file read in the indexing process itself (a few files, or --workers 0) that crashes it: that run dies,
    keeping what it committed; the next one reads the culprit in a process of its own, records it as failed
    with the reason, and indexes the rest."""
    folder = tmp_path / "media"
    names = ["a.png", "b.png", "t.png", "u.png", "v.png", "w.png"]  # (read in order: a, b, the culprit, t...)
    for i, name in enumerate([*names, culprit]):
        draw_image(folder / name, seed=i)
    lib = tmp_path / "lib"
    died = _index_cli(folder, lib, "--workers", "0")
    assert died.returncode in (-11, -9), (died.returncode, died.stderr)  # SIGSEGV or SIGKILL: nothing could catch it
    assert (lib / "reading").exists()

    with bindsearch.open_library(lib) as library:  # the batches before the culprit were committed
        committed = len(library.stored_vectors(Modality.IMAGE)[0])
    assert committed == 2  # (a.png, b.png: one batch of two)

    done = _index_cli(folder, lib)  # few files: read in this process, but the suspect in one of its own
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 3, (done.returncode, done.stderr)
    report = json.loads(done.stdout)
    assert [(Path(e["path"]).name, e["reason"]) for e in report["errors"]] == [(culprit, reason)]
    assert (report["added"], report["unchanged"], report["failed"]) == (4, 2, 1), report
    assert not (lib / "reading").exists()  # a run that ends leaves no note behind

    again = _index_cli(folder, lib)  # unchanged, it is not read again (that would kill the run)
    assert again.returncode == 3, again.stderr
    assert json.loads(again.stdout)["still_failed"] == 1

    retried = _index_cli(folder, lib, "--retry-failed")  # asked for: it is read, and takes the run down again
    assert retried.returncode in (-11, -9), retried.stderr
    with bindsearch.open_library(lib) as library:
        assert len(library.stored_vectors(Modality.IMAGE)[0]) == 6  # nothing lost


def test_a_run_killed_from_outside_costs_the_file_it_was_reading_nothing(tmp_path: Path) -> None:
    """``kill -9`` of a run while it reads a good file leaves the same note as a crash: the next run reads the
    file in a process of its own, and it is indexed like any other."""
    from bindsearch.indexer.read_marker import ReadMarker

    folder = tmp_path / "media"
    draw_image(folder / "a.png", seed=1)
    good = draw_image(folder / "b.png", seed=2)
    lib = tmp_path / "lib"
    assert _index_cli(tmp_path / "media" / "a.png", lib).returncode == 0
    reading = ReadMarker(str(lib)).reading(str(good), Modality.IMAGE)
    reading.__enter__()  # and never left: what a killed run leaves behind (kept referenced until the end)
    assert ReadMarker(str(lib)).leftover().path == str(good)
    done = _index_cli(folder, lib)
    assert done.returncode == 0, done.stderr
    assert (json.loads(done.stdout)["added"], json.loads(done.stdout)["unchanged"]) == (1, 1)
    assert not (lib / "reading").exists()
    del reading


def test_a_torn_or_foreign_note_is_ignored(tmp_path: Path) -> None:
    from bindsearch.indexer.read_marker import ReadMarker

    marker = ReadMarker(str(tmp_path))
    assert marker.leftover() is None
    (tmp_path / "reading").write_text('{"path": "/x", "modal')
    assert marker.leftover() is None
    (tmp_path / "reading").write_bytes(b"\xff\xfe")
    assert marker.leftover() is None
    name = "caf\udcc3.png"  # a file name that is not UTF-8 survives the note
    with marker.reading(str(tmp_path / name), Modality.IMAGE):
        left = ReadMarker(str(tmp_path)).leftover()
        assert left is not None and left.path == str(tmp_path / name) and left.size == -1
    assert ReadMarker(str(tmp_path)).leftover() is None  # cleared once read
    marker.close()
    assert not (tmp_path / "reading").exists()


# -- as many workers as the memory holds -----------------------------------------------------------


def test_workers_are_capped_by_the_memory_free() -> None:
    from bindsearch.indexer.memory import WORKER_BYTES, workers_memory_allows

    assert workers_memory_allows(8, 8 * WORKER_BYTES) == 8
    assert workers_memory_allows(8, 3 * WORKER_BYTES + 1) == 3  # 8 asked for, room for 3
    assert workers_memory_allows(8, WORKER_BYTES // 2) == 1  # never none: the run reads at least in one
    assert workers_memory_allows(2, 100 * WORKER_BYTES) == 2  # never more than asked for
    assert workers_memory_allows(8, None) == 8  # memory unknown: as asked


def test_the_free_memory_is_read_from_the_system() -> None:
    from bindsearch.indexer.memory import available_memory

    free = available_memory()
    if not os.path.exists("/proc/meminfo"):
        assert free is None
        return
    with open("/proc/meminfo") as f:
        total = int(next(line for line in f if line.startswith("MemTotal:")).split()[1]) * 1024
    assert free is not None and 0 < free <= total
