"""Crash safety for real: ``bindsearch index`` runs as a subprocess and is SIGKILLed at many points.

After every kill the library must open and answer queries over everything
committed, hold no duplicate, every item's vector row must have its checksum,
and its indexes must hold exactly the vectors stored; a rerun must redo at most the batches that were in flight,
leaving committed items (ids, vectors, rows) untouched; the killed run's
worker processes must not outlive it. A second writer is refused with the
first one's pid (and changes nothing, not even the space of a library still
without vectors), a killed writer's lock is free at once, and queries run
while a writer writes.

Kill points come two ways: timed (a read-only SQLite reader polls until the
run has committed k items, then kills it; wherever the kill lands, the checks
must hold) and exact (a wrapper around the CLI patches one function so that
the process SIGKILLs, interrupts or stops itself right there: after a batch's
vectors are appended and before its transaction, inside the transaction, after
a commit, between writing an index file and renaming it, between a commit and
its index update, while the library is created).

The exact limit is set low for these runs (``EXACT_LIMIT``), so that their image
indexes are approximate and each run ends with an index build: kills land in
builds too.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, draw_image, write_wav

import bindsearch
from bindsearch.modality import BUILTIN_MODALITIES, Modality

SPACE = str(REPO / "examples" / "tiny-imagebind.json")  # all seven modalities, random weights, fast
BATCH = 4
N_IMAGES, N_NOTES, N_SOUNDS = 50, 4, 6  # 4 notes: one text batch, so the text tower is loaded once per run
TIMEOUT = 120  # seconds any single step may take on a slow, busy machine before the test fails
EXACT_LIMIT = "6"  # vectors searched exactly: above it (the images here) an approximate index, built by the runs

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


@pytest.fixture(autouse=True)
def _approximate_indexes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINDSEARCH_EXACT_LIMIT", EXACT_LIMIT)  # here and in every process started here


# -- media ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 small files: 50 images, 4 text notes, 6 short sounds (all distinct content)."""
    root = tmp_path_factory.mktemp("crash") / "media"
    for i in range(N_IMAGES):
        draw_image(root / "photos" / f"p{i:03d}.png", seed=1000 + i)
    for i in range(N_NOTES):
        (root / "notes").mkdir(parents=True, exist_ok=True)
        (root / "notes" / f"n{i}.txt").write_text(f"note {i}: a {['dog', 'cat', 'car', 'boat'][i]} by the sea\n")
    for i in range(N_SOUNDS):
        write_wav(root / "sounds" / f"s{i}.wav", seconds=0.5, freq=220.0 + 110 * i)
    return root


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough images that a run is still writing long after its first commit (it is always killed)."""
    root = tmp_path_factory.mktemp("crash-big") / "photos"
    for i in range(3000):  # about a second to draw
        draw_image(root / f"b{i:04d}.png", seed=5000 + i, size=(48, 40))
    return root


def expected_items(folder: Path) -> set[tuple[str, str]]:
    kinds = {".png": "image", ".txt": "text", ".wav": "audio"}
    return {(os.path.abspath(p), kinds[p.suffix]) for p in folder.rglob("*") if p.is_file()}


# -- processes ------------------------------------------------------------------------------------


def bindsearch_command() -> list[str]:
    script = Path(sys.executable).with_name("bindsearch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bindsearch.cli"]


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: [state, ppid, ...]; index 19 is the start time."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tagged(token: str) -> list[tuple[int, int]]:
    """(pid, start time) of every live process started with ``token`` in its environment.

    Every process a test starts carries its own token, and so does everything that process starts in
    turn (its reading workers, the multiprocessing resource tracker), however late before it died.
    """
    if not os.path.isdir("/proc"):
        return []
    mark = f"{TOKEN_VAR}={token}".encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if mark not in f.read().split(b"\0"):
                    continue
        except OSError:
            continue
        fields = _stat(int(name))
        if fields is not None and fields[0] not in ("Z", "X"):
            out.append((int(name), int(fields[19])))
    return out


def alive(proc: tuple[int, int]) -> bool:
    fields = _stat(proc[0])
    return fields is not None and int(fields[19]) == proc[1] and fields[0] not in ("Z", "X")


def kill_exact(procs: list[tuple[int, int]]) -> None:
    """SIGKILL these processes, each only if it is still the very process seen (same pid and start time)."""
    for proc in procs:
        if alive(proc):
            try:
                os.kill(proc[0], signal.SIGKILL)
            except ProcessLookupError:
                pass


class KnownBug(AssertionError):
    """The check that a known, reported bug breaks (its xfail names it); any other failure stays a failure."""


TOKEN_VAR = "BINDSEARCH_CRASH_TEST_PROCESS"
_TOKENS = itertools.count()
_STARTED: list[Proc] = []


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    """Whatever a test leaves running (after a failed assertion, say) is killed with its workers."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        proc.kill()


class Proc:
    """A subprocess whose stdout and stderr go to files (a killed one never blocks on a full pipe)."""

    def __init__(self, args: list[str], logs: Path, name: str) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.out_path, self.err_path = logs / f"{name}.out", logs / f"{name}.err"
        self.token = f"{os.getpid()}-{next(_TOKENS)}"
        env = {**os.environ, TOKEN_VAR: self.token}
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        self.orphans: list[tuple[int, int]] = []  # what it started and still runs after it was killed
        _STARTED.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def kill(self, reap: bool = True) -> int:
        """SIGKILL it (if it still runs). What it started is killed too (``reap``), or left in ``orphans``."""
        if self.popen.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        rc = self.popen.wait(TIMEOUT)
        self.orphans = tagged(self.token)
        if reap:
            kill_exact(self.orphans)
        return rc

    def wait(self) -> int:
        try:
            return self.popen.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"process did not finish in {TIMEOUT} s: {self.stderr()}") from None

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")


def start_index(folder: Path, lib: Path, logs: Path, name: str, *, space: str | None = SPACE) -> Proc:
    args = [*bindsearch_command(), "index", str(folder), "--library", str(lib), "--batch-size", str(BATCH), "--json"]
    if space:
        args += ["--space", space]
    return Proc(args, logs, name)


# Runs the CLI, but SIGKILLs (or interrupts, or SIGSTOPs) itself at an exact point, the NTH time it is reached:
# argv is POINT NTH, then the CLI's own arguments.
KILL_AT = r"""
import os, signal, sys, time
point, nth = sys.argv[1], int(sys.argv[2])
del sys.argv[1:3]
sys.argv[0] = "bindsearch"
calls = [0]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def nth_call():
    calls[0] += 1
    return calls[0] == nth

from bindsearch.library import opening as O
from bindsearch.library import index_manager as M
from bindsearch.library import vector_stores as S
from bindsearch.library import writer as W

if point == "creating-before-database":     # the library's (staging) folder is made, its database not yet
    O.sqlite_engine = lambda *a, **k: die()
elif point == "creating-after-tables":      # tables created, the library's meta rows not yet written
    create_all = O.Base.metadata.create_all
    def patched(*a, **k):
        create_all(*a, **k)
        die()
    O.Base.metadata.create_all = patched
elif point == "inside-transaction":          # a batch's rows are written, its transaction not committed
    bump = W._bump_generation
    def patched(*a, **k):
        bump(*a, **k)
        if nth_call():
            die()
    W._bump_generation = patched
elif point == "after-vector-append":         # a batch's vectors are durable in their file, no row points at them
    append = S.VectorStores.append
    def patched(*a, **k):
        found = append(*a, **k)
        if nth_call():
            die()
        return found
    S.VectorStores.append = patched
elif point == "after-commit":                # a batch is committed, the run's index build not done
    commit = W.LibraryWriter.commit
    def patched(self):
        staged = self.pending
        commit(self)
        if staged and nth_call():
            die()
    W.LibraryWriter.commit = patched
elif point == "index-rename":                # an index file is written in full, not yet renamed into place
    replace = os.replace
    def patched(src, dst, *a, **k):
        if str(dst).endswith(".ivf"):
            die()
        return replace(src, dst, *a, **k)
    os.replace = patched
elif point == "stop-before-first-commit":    # holds the lock, library made, no vector yet: stops (SIGSTOP)
    commit = W.LibraryWriter.commit
    def patched(self):
        if self.pending and nth_call():
            os.kill(os.getpid(), signal.SIGSTOP)
        commit(self)
    W.LibraryWriter.commit = patched
elif point == "sigint-before-index-update":  # Ctrl-C after a batch's transaction, before its index mirrors it
    apply = M.IndexManager.apply
    def patched(self, *a, **k):
        if nth_call():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)  # KeyboardInterrupt is raised here
        return apply(self, *a, **k)
    M.IndexManager.apply = patched
elif point == "stop-before-create":          # found no library and is about to create one: stops
    create = O.create_library
    def patched(*a, **k):
        os.kill(os.getpid(), signal.SIGSTOP)
        return create(*a, **k)
    O.create_library = patched
elif point == "stop-in-creation":            # creating the library (its database not opened yet): stops
    engine = O.sqlite_engine
    def patched(*a, **k):
        if nth_call():
            os.kill(os.getpid(), signal.SIGSTOP)
        return engine(*a, **k)
    O.sqlite_engine = patched
else:
    raise SystemExit("unknown kill point " + point)

from bindsearch.cli.app import main
main()
"""


def start_index_killed_at(point: str, nth: int, folder: Path, lib: Path, logs: Path) -> Proc:
    script = logs / "kill_at.py"
    logs.mkdir(parents=True, exist_ok=True)
    script.write_text(KILL_AT)
    args = [
        sys.executable,
        str(script),
        point,
        str(nth),
        "index",
        str(folder),
        "--library",
        str(lib),
        "--space",
        SPACE,
        "--batch-size",
        str(BATCH),
        "--json",
    ]
    return Proc(args, logs, f"kill-at-{point}")


# -- reading the library from outside -------------------------------------------------------------


def db_state(lib: Path) -> tuple[bool, int]:
    """(library created, item rows committed) as a read-only reader sees them right now."""
    db = lib / "library.sqlite"
    if not db.exists():
        return False, 0
    try:
        con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            created = con.execute("SELECT 1 FROM meta WHERE key = 'space_spec'").fetchone() is not None
            rows = con.execute("SELECT count(*) FROM items").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:  # not created yet, or caught mid-creation
        return False, 0
    return created, int(rows)


def wait_for(condition, proc: Proc, what: str) -> bool:
    """Poll until ``condition()`` holds (True), or the process ends first (False); never a fixed sleep."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        if condition():
            return True
        if not proc.running():
            return bool(condition())
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}; stderr: {proc.stderr()[-2000:]}")
        time.sleep(0.01)


def vector_row(lib: Path, name: str, slot: int | None, crc: int | None) -> bytes | None:
    """The bytes of row ``slot`` of a vector file as they lie on disk; None where there is none, or where its
    CRC-32 is not the one recorded (a row torn or never made durable)."""
    if slot is None:
        return None
    file = lib / "vectors" / f"{name}.f32"
    dim = int(meta(lib)["dim"])
    with open(file, "rb") as f:
        f.seek(4096 + slot * 4 * dim)
        data = f.read(4 * dim)
    return data if len(data) == 4 * dim and zlib.crc32(data) == crc else None


def rows(lib: Path) -> dict[int, tuple]:
    """Every item row and its vector: id -> (path, modality, status, size, mtime_ns, hash, indexed_at, vector)."""
    con = sqlite3.connect(f"{(lib / 'library.sqlite').as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        out = {}
        query = ("SELECT id, path, modality, status, size, mtime_ns, content_hash, indexed_at, slot, crc "
                 "FROM items")
        for row in con.execute(query):
            path = os.fsdecode(row[1]) if isinstance(row[1], bytes) else row[1]
            out[row[0]] = (path, *row[2:8], vector_row(lib, row[2], row[8], row[9]))
        return out
    finally:
        con.close()


def check_library(lib: Path, before: dict[int, tuple] | None = None) -> dict[int, tuple]:
    """Everything that must hold after any kill; returns the committed rows for the next comparison."""
    if not (lib / "library.sqlite").exists():
        assert before is None or not before, "the library vanished"
        return {}
    con = sqlite3.connect(f"{(lib / 'library.sqlite').as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        misplaced = con.execute(
            "SELECT count(*) FROM items WHERE (status = 'ok') != (slot IS NOT NULL AND crc IS NOT NULL)"
        ).fetchone()[0]
        assert misplaced == 0, "an embedded item without a vector row, or another with one"
    finally:
        con.close()
    now = rows(lib)
    keys = Counter((r[0], r[1]) for r in now.values())
    assert max(keys.values(), default=1) == 1, f"duplicate items: {[k for k, n in keys.items() if n > 1]}"
    assert all(r[2] == "ok" and r[7] is not None for r in now.values()), \
        "an item failed, or its vector row is missing or does not match its checksum"

    # Committed work survives the kill untouched: same id, path, vector, even the same row (not redone).
    if before:
        lost = sorted(set(before) - set(now))
        assert not lost, f"items committed before the kill are gone: {lost}"
        changed = [i for i in before if now[i] != before[i]]
        assert not changed, f"items committed before the kill were rewritten: {changed}"

    with bindsearch.open_library(lib) as library:
        total = 0
        for modality in BUILTIN_MODALITIES:
            ids, vectors = library.stored_vectors(modality)
            want = sorted(i for i, r in now.items() if r[1] == modality.value and r[2] == "ok" and r[7] is not None)
            assert sorted(ids.tolist()) == want
            if len(ids):
                norms = np.linalg.norm(vectors, axis=1)
                np.testing.assert_allclose(norms, 1.0, atol=1e-5, err_msg=f"{modality.value} vectors not unit")
            index = library.vector_index(modality)  # built again from the vectors when its file is unusable
            assert sorted(index.ids().tolist()) == want, f"{modality.value} index ids differ from the library's"
            assert_finds_each(index, ids, vectors)
            total += len(ids)

        # A query answers over everything committed: asking for all of it returns each item once.
        if total:
            probe = min(now)
            vector = np.frombuffer(now[probe][7], dtype="<f4")
            hits = library.search(vector, k=total)
            assert sorted(h.id for h in hits) == sorted(now)
            assert hits[0].id == probe and hits[0].score == pytest.approx(1.0, abs=1e-4)
            assert {(h.path, h.modality.value) for h in hits} == {(r[0], r[1]) for r in now.values()}
    return now


def assert_finds_each(index, ids: np.ndarray, vectors: np.ndarray) -> None:
    """Each stored vector is its own best hit in ``index``, at its exact score: no stale or missing vector."""
    if not len(ids):
        return
    scores, found = index.search(vectors, 1)
    assert found[:, 0].tolist() == ids.tolist(), "an index does not hold the library's vectors"
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def run_to_completion(folder: Path, lib: Path, logs: Path, name: str) -> dict:
    proc = start_index(folder, lib, logs, name, space=None)
    rc = proc.wait()
    assert rc == 0, f"{name} exited with {rc}: {proc.stderr()[-2000:]}"
    return json.loads(proc.stdout())


def meta(lib: Path) -> dict[str, str]:
    con = sqlite3.connect(f"{(lib / 'library.sqlite').as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        return dict(con.execute("SELECT key, value FROM meta").fetchall())
    finally:
        con.close()


def images(folder: Path, n: int, seed: int) -> Path:
    for i in range(n):
        draw_image(folder / f"i{i}.png", seed=seed + i)
    return folder


# -- SIGKILL at timed points ----------------------------------------------------------------------


def test_sigkill_anywhere_loses_at_most_the_batches_in_flight(media: Path, tmp_path: Path) -> None:
    """One library, killed again and again at later points, then finished; every step checked."""
    lib, logs = tmp_path / "lib", tmp_path / "logs"
    files = expected_items(media)
    assert len(files) == N_IMAGES + N_NOTES + N_SOUNDS

    # Right after start: still importing, nothing exists yet (on a very slow machine perhaps something does).
    start_index(media, lib, logs, "run0").kill()
    committed = check_library(lib)

    # As soon as the library exists (before, or just after, the first commit); after >= 20 items;
    # near the end, once the text batch and more are in (the last batches in flight).
    outcomes = []
    for n, k in enumerate([0, 20, len(files) - 6], start=1):
        proc = start_index(media, lib, logs, f"run{n}")
        reached = wait_for(lambda k=k: (s := db_state(lib))[0] and s[1] >= k, proc, f"{k} items")
        rc = proc.kill()
        outcomes.append((k, reached, rc, db_state(lib)[1]))
        assert rc in (0, -signal.SIGKILL), f"run {n} exited with {rc}: {proc.stderr()[-2000:]}"
        committed = check_library(lib, committed)
        if reached:
            assert len(committed) >= k
        else:  # the run finished before the kill point: then everything is in
            assert rc == 0 and len(committed) == len(files), outcomes

    # A rerun finishes the job, embedding at most what was not committed before the kill.
    before = len(committed)
    report = run_to_completion(media, lib, logs, "finish")
    assert report["failed"] == 0 and report["removed"] == 0, report
    assert report["embedded"] <= len(files) - before, (report, before, outcomes)
    assert report["unchanged"] == before and report["added"] == len(files) - before, (report, before, outcomes)
    final = check_library(lib, committed)
    assert sorted((r[0], r[1]) for r in final.values()) == sorted(files)

    # A third run finds nothing to do.
    report = run_to_completion(media, lib, logs, "again")
    assert (report["unchanged"], report["embedded"], report["added"], report["updated"]) == (len(files), 0, 0, 0)
    assert check_library(lib, final) == final


# -- SIGKILL at exact points ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "nth", "committed"),
    [
        ("after-vector-append", 2, 4),  # batch 2's vectors durable, its rows not written: nothing of batch 2
        ("inside-transaction", 2, 4),  # dies inside batch 2's transaction: batch 1 whole, nothing of batch 2
        ("after-commit", 2, 8),  # dies right after batch 2 committed: both there, the index not built
        ("index-rename", 1, 10),  # a complete index file not yet renamed: all there (the file is cleared later)
    ],
)
def test_sigkill_at_exact_points_of_a_commit(point: str, nth: int, committed: int, tmp_path: Path) -> None:
    folder, lib, logs = images(tmp_path / "media", 10, seed=300), tmp_path / "lib", tmp_path / "logs"
    proc = start_index_killed_at(point, nth, folder, lib, logs)
    assert proc.wait() == -signal.SIGKILL, proc.stderr()[-2000:]
    assert db_state(lib) == (True, committed)  # batches are all or nothing
    before = check_library(lib)

    with bindsearch.open_library(lib) as library:  # the rerun, in this process (the CLI's is tested above)
        report = library.index([folder], batch_size=BATCH)
    assert (report.embedded, report.unchanged, report.failed) == (10 - committed, committed, 0), report
    assert len(check_library(lib, before)) == 10
    leftovers = sorted(p.name for p in (lib / "index").iterdir() if p.name.startswith(".tmp-"))
    assert not leftovers, f"temporary files left in the index folder: {leftovers}"


@pytest.mark.parametrize("point", ["creating-before-database", "creating-after-tables"])
def test_sigkill_while_the_library_is_created(point: str, tmp_path: Path) -> None:
    folder, lib, logs = images(tmp_path / "media", 3, seed=700), tmp_path / "lib", tmp_path / "logs"
    proc = start_index_killed_at(point, 1, folder, lib, logs)
    assert proc.wait() == -signal.SIGKILL, proc.stderr()[-2000:]
    assert not (lib / "library.sqlite").exists()  # no half-made library in place
    # The next run is not stuck with a half-made library: it creates one, indexes, and clears the leftovers.
    with bindsearch.open_library(lib, SPACE, create=True) as library:
        report = library.index([folder], batch_size=BATCH)
    assert (report.added, report.failed) == (3, 0)
    check_library(lib)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib", "logs", "media"]


def test_sigkill_leaves_no_worker_running(big: Path, tmp_path: Path) -> None:
    lib, logs = tmp_path / "lib", tmp_path / "logs"
    proc = start_index(big, lib, logs, "run")  # hundreds of files: read by worker processes
    assert wait_for(lambda: db_state(lib)[1] >= BATCH, proc, "the first commit"), proc.stderr()
    started = [p for p in tagged(proc.token) if p[0] != proc.pid]
    assert started, "no reading worker was seen: the test proves nothing"
    assert proc.kill(reap=False) == -signal.SIGKILL
    deadline = time.monotonic() + 3
    while (left := tagged(proc.token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_exact(left)
    assert not left, f"{len(left)} of the {len(started)} processes it started still run 3 s after the kill"


# -- interrupts and signals other than SIGKILL ----------------------------------------------------


def test_ctrl_c_between_commit_and_index_update_leaves_no_stale_index(tmp_path: Path) -> None:
    folder, lib, logs = images(tmp_path / "media", 8, seed=900), tmp_path / "lib", tmp_path / "logs"
    with bindsearch.open_library(lib, SPACE, create=True) as library:
        assert library.index([folder], batch_size=BATCH).embedded == 8
    images(folder, 8, seed=950)  # every file changes: the next run updates vectors, the counts stay
    proc = start_index_killed_at("sigint-before-index-update", 2, folder, lib, logs)
    assert proc.wait() == 130, proc.stderr()[-2000:]  # interrupted: what was done is kept
    with bindsearch.open_library(lib) as library:
        ids, vectors = library.stored_vectors(Modality.IMAGE)
        assert_finds_each(library.vector_index(Modality.IMAGE), ids, vectors)
    check_library(lib)


# -- one writer at a time, readers alongside ------------------------------------------------------

LOCKED = re.compile(
    r"^error: library .* is being written by another bindsearch process \(pid (\d+), started [^)]*\); "
    r"wait for it to finish$"
)


def test_one_writer_at_a_time_queries_alongside_and_a_killed_writer_frees_the_lock(big: Path, tmp_path: Path) -> None:
    lib, logs = tmp_path / "lib", tmp_path / "logs"
    first = start_index(big, lib, logs, "first")
    assert wait_for(lambda: (s := db_state(lib))[0] and s[1] >= BATCH, first, "the first commit"), first.stderr()
    at_query_start = db_state(lib)[1]

    # While it writes: a query (reads committed items only) and a second writer (refused at once).
    query = Proc(
        [*bindsearch_command(), "query", "--text", "x", "--library", str(lib), "--json", "-k", "5"], logs, "query"
    )
    second = start_index(big, lib, logs, "second", space=None)
    rc = second.wait()
    first_still_writing = first.running()
    errors = [line for line in second.stderr().splitlines() if line.startswith("error:")]
    assert rc == 2, second.stderr()
    assert len(errors) == 1, second.stderr()
    match = LOCKED.match(errors[0])
    assert match, errors[0]
    assert int(match.group(1)) == first.pid
    assert first_still_writing, "the first run ended before the second was refused: the refusal proves nothing"
    assert second.stdout() == ""

    assert query.wait() == 0, query.stderr()
    hits = json.loads(query.stdout())
    committed = rows(lib)  # items are only added here, so what the query saw is among them
    assert min(5, at_query_start) <= len(hits) <= 5  # everything committed when it started was searchable
    for hit in hits:
        assert hit["id"] in committed
        assert (hit["path"], hit["modality"]) == committed[hit["id"]][:2]
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    assert all(a["score"] >= b["score"] for a, b in itertools.pairwise(hits))

    # SIGKILL the writer mid-run: the kernel drops its lock, the next run takes over at once.
    assert first.kill() == -signal.SIGKILL, "the first run finished before it could be killed mid-run"
    holder = json.loads((lib / "write.lock").read_text() or "{}")
    assert holder.get("pid") == first.pid  # a dead holder's record is left behind ...
    at_kill = check_library(lib)
    more = images(tmp_path / "more", 3, seed=8000)
    report = run_to_completion(more, lib, logs, "third")  # ... and blocks no one
    assert (report["added"], report["failed"], report["removed"]) == (3, 0, 0), report
    after = check_library(lib, at_kill)
    assert len(after) == len(at_kill) + 3


def test_a_refused_writer_with_another_space_changes_nothing(tmp_path: Path) -> None:
    folder, lib, logs = images(tmp_path / "media", 6, seed=1200), tmp_path / "lib", tmp_path / "logs"
    first = start_index_killed_at("stop-before-first-commit", 1, folder, lib, logs)  # holds the lock, no vector yet
    assert wait_for(lambda: (_stat(first.pid) or ["?"])[0] == "T", first, "the first run to stop"), first.stderr()
    space_before = meta(lib)["space_fingerprint"]
    second = start_index(folder, lib, logs, "second", space=str(REPO / "examples" / "tiny-space.json"))
    rc = second.wait()
    os.kill(first.pid, signal.SIGCONT)
    assert first.wait() == 0, first.stderr()[-2000:]
    assert rc == 2 and LOCKED.match(second.stderr().strip().splitlines()[-1]), second.stderr()
    assert meta(lib)["space_fingerprint"] == space_before, "the refused run switched the library's space"
    assert len(check_library(lib)) == 6


def stopped(proc: Proc) -> bool:
    return (_stat(proc.pid) or ["?"])[0] == "T"


def test_first_runs_racing_to_create_a_library_share_it(tmp_path: Path) -> None:
    folder, lib, logs = images(tmp_path / "media", 3, seed=1500), tmp_path / "lib", tmp_path / "logs"
    early = start_index_killed_at("stop-before-create", 1, folder, lib, logs)  # saw no library, will create one
    midway = start_index_killed_at("stop-in-creation", 1, folder, lib, logs)  # creating one beside it
    for proc in (early, midway):
        assert wait_for(lambda proc=proc: stopped(proc), proc, "a creator to stop"), proc.stderr()[-2000:]
    winner = start_index(folder, lib, logs, "winner")  # creates the library meanwhile and indexes everything
    assert winner.wait() == 0, winner.stderr()[-2000:]
    assert json.loads(winner.stdout())["added"] == 3

    failed = {}
    for name, proc in (("early", early), ("midway", midway)):
        os.kill(proc.pid, signal.SIGCONT)
        if proc.wait() != 0:
            failed[name] = (proc.popen.returncode, proc.stderr().strip().splitlines()[-1:])
        else:  # it found the winner's library, with everything in it
            assert json.loads(proc.stdout())["unchanged"] == 3
    assert len(check_library(lib)) == 3
    if failed:
        raise KnownBug(f"runs that lost the race failed: {failed}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib", "logs", "media"]  # no staging folder left
