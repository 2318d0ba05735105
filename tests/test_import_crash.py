"""Crash safety of ``bindsearch import``: the command runs as a subprocess and is SIGKILLed at many points.

After every kill the library must open (``Library.open``, ``bindsearch info --json``), hold each
imported item with exactly the vector of its row in the file, find an imported vector's own path
first, and keep every chunk the run reported done; running the same import again must complete it
(every row once, counts right). Queries in other processes answer while an import is killed.

Everything is seen from outside, through the command line and the public API (``Library.open``,
``counts``, ``search``, ``export``), so that the checks hold whatever the library stores underneath.
Kill points come two ways: timed (the run reports each chunk it has committed to a file, and is
killed once it has reported enough) and exact (a launcher wraps the command so that the process
SIGKILLs itself right after a chunk's transaction commits, or inside one, just before its COMMIT).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_SPACE_FILE

import bindsearch
from bindsearch.modality import Modality

ROWS, DIM, CHUNK = 3000, 64, 50  # the tiny OpenCLIP space's 64 dims; 60 chunks, one transaction each
TIMEOUT = 120  # seconds any single step may take on a slow, busy machine before the test fails

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


# -- the file to import ---------------------------------------------------------------------------


def row_path(i: int) -> str:
    return f"/data/import/v{i:05d}.png"  # no such file: imported items that index runs leave alone


@pytest.fixture(scope="module")
def vectors_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A .npz of ROWS random unit vectors (one image path each), and its rows by path."""
    rng = np.random.default_rng(20240)
    vectors = rng.normal(size=(ROWS, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    paths = [row_path(i) for i in range(ROWS)]
    file = tmp_path_factory.mktemp("import-crash") / "vectors.npz"
    np.savez(file, path=np.array(paths), modality=np.array("image"), vector=vectors)
    return file, dict(zip(paths, vectors))


# -- processes ------------------------------------------------------------------------------------

_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    """Whatever a test leaves running (after a failed assertion, say) is killed."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait(TIMEOUT)


def start(args: list[str], logs: Path, name: str) -> tuple[subprocess.Popen, Path, Path]:
    """A subprocess whose stdout and stderr go to files (a killed one never blocks on a full pipe)."""
    logs.mkdir(parents=True, exist_ok=True)
    out, err = logs / f"{name}.out", logs / f"{name}.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(args, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
    _STARTED.append(proc)
    return proc, out, err


def cli(*args: object) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert "Traceback" not in done.stderr, done.stderr
    return done


# Runs ``bindsearch import`` with CHUNK-row transactions (argv: POINT NTH CHUNK_ROWS PROGRESS_FILE, then the
# command's own arguments). Every committed chunk is reported by appending the rows done to PROGRESS_FILE:
# what the test knows is durable. POINT "none" runs as is (``--pause`` seconds after each chunk, so that
# readers alongside find it still writing); "after-commit" SIGKILLs itself right after the NTH chunk's
# transaction commits; "inside-transaction" inside the NTH chunk's transaction, every row written, just
# before its COMMIT (SQLAlchemy's commit event, which fires before the database commits).
IMPORT_AT = r"""
import os, signal, sys, time
point, nth, chunk_rows, progress_file, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], \
    float(sys.argv[5])
del sys.argv[1:6]
sys.argv[0] = "bindsearch"
chunks_done = [0]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def progress(done, total):
    chunks_done[0] += 1
    with open(progress_file, "a") as f:
        f.write(f"{done}\n")
    if point == "after-commit" and chunks_done[0] == nth:
        die()
    time.sleep(pause)

if point == "inside-transaction":
    from sqlalchemy import Engine, event

    @event.listens_for(Engine, "commit")
    def before_commit(conn):
        # (a transaction that wrote rows: SQLite's driver opens one at the first change)
        if chunks_done[0] == nth - 1 and conn.connection.dbapi_connection.in_transaction:
            die()
elif point not in ("none", "after-commit"):
    raise SystemExit("unknown kill point " + point)

import bindsearch.api
import_vectors = bindsearch.api.Library.import_vectors

def in_small_chunks(self, file, **options):
    return import_vectors(self, file, **{**options, "chunk_rows": chunk_rows, "progress": progress})

bindsearch.api.Library.import_vectors = in_small_chunks
from bindsearch.cli.app import main
main()
"""


class ImportRun:
    """``bindsearch import FILE --library LIB --space TINY --json`` in chunks of CHUNK rows, killed at ``point``."""

    def __init__(self, file: Path, lib: Path, logs: Path, name: str, point: str = "none", nth: int = 0,
                 pause: float = 0.0) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        script = logs / "import_at.py"
        script.write_text(IMPORT_AT)
        self.progress_file = logs / f"{name}.progress"
        self.progress_file.write_text("")
        self.proc, _, self.err_path = start(
            [sys.executable, str(script), point, str(nth), str(CHUNK), str(self.progress_file), str(pause),
             "import", str(file), "--library", str(lib), "--space", str(TINY_SPACE_FILE), "--json"],
            logs, name)

    def reported(self) -> int:
        """Rows of the chunks it has reported committed (whole lines only: one may be half written)."""
        lines = self.progress_file.read_text().split("\n")[:-1]
        return int(lines[-1]) if lines else 0

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def kill_once_reported(self, rows: int) -> bool:
        """SIGKILL it as soon as it has reported ``rows`` committed; False when it finished first."""
        deadline = time.monotonic() + TIMEOUT
        while self.reported() < rows and self.proc.poll() is None:
            assert time.monotonic() < deadline, f"no progress to {rows} rows: {self.stderr()[-2000:]}"
            time.sleep(0.005)
        reached = self.reported() >= rows and self.proc.poll() is None
        if self.proc.poll() is None:
            self.proc.kill()
        rc = self.proc.wait(TIMEOUT)
        assert rc in (0, -signal.SIGKILL), f"import exited with {rc}: {self.stderr()[-2000:]}"
        return reached

    def wait(self) -> int:
        return self.proc.wait(TIMEOUT)


# -- the checks -----------------------------------------------------------------------------------


def check_library(lib: Path, rows: dict[str, np.ndarray], tmp: Path, *, at_least: int = 0,
                  kept: set[str] = frozenset()) -> set[str]:
    """What must hold after any kill: the library opens and answers, each item it holds is a row of the
    file with that row's vector, none twice, at least ``at_least`` of them and every path of ``kept``
    among them. Returns the paths it holds."""
    info = cli("info", "--library", lib, "--json")
    assert info.returncode == 0, info.stderr
    counts = json.loads(info.stdout)["counts"]
    with bindsearch.Library.open(lib) as library:
        held = library.counts().get(Modality.IMAGE, 0)
        assert counts == ({"image": held} if held else {}), counts
        exported = library.export(tmp / "check.npz")
        with np.load(exported.path, allow_pickle=False) as data:
            paths, vectors = [str(p) for p in data["path"]], data["vector"]
        os.unlink(exported.path)
        assert len(paths) == held and len(set(paths)) == held, "an item is held twice"
        assert held >= at_least, f"{held} items held, {at_least} were reported committed"
        assert kept <= set(paths), f"items held before are gone: {sorted(kept - set(paths))[:5]}"
        unknown = [p for p in paths if p not in rows]
        assert not unknown, f"items that are no row of the file: {unknown[:5]}"
        if held:
            want = np.stack([rows[p] for p in paths])
            got = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
            cosines = np.einsum("ij,ij->i", got, want)
            assert cosines.min() >= 0.9999, f"{paths[int(cosines.argmin())]} has another vector"
        for path in sorted(paths)[:: max(1, held // 4)]:  # a few, first to last
            hits = library.search(rows[path], targets=["image"], k=1)
            assert [h.path for h in hits] == [path]
    return set(paths)


def complete(file: Path, lib: Path, held: set[str], rows: dict[str, np.ndarray], tmp: Path) -> None:
    """The same import again, by the plain command: every row in once, what was held updated."""
    done = cli("import", file, "--library", lib, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["rows"], report["imported"], report["skipped"]) == (ROWS, ROWS, 0), report
    assert (report["added"], report["updated"]) == (ROWS - len(held), len(held)), report
    assert check_library(lib, rows, tmp, kept=held) == set(rows)


# -- SIGKILL at timed points ----------------------------------------------------------------------


def test_sigkill_at_timed_points_keeps_every_chunk_reported_and_a_rerun_completes(vectors_file, tmp_path):
    """One library, its import killed again and again at later points, then finished; every step checked."""
    file, rows = vectors_file
    lib, logs = tmp_path / "lib", tmp_path / "logs"
    held: set[str] = set()
    landed = []
    # After its first chunk, and at about 40 % and 80 % of the rows (each run starts from row 0 again).
    for n, k in enumerate([CHUNK, ROWS * 2 // 5, ROWS * 4 // 5]):
        run = ImportRun(file, lib, logs, f"run{n}")
        reached = run.kill_once_reported(k)
        held = check_library(lib, rows, tmp_path, at_least=run.reported(), kept=held)
        landed.append(reached)
        if not reached:  # it finished before the kill: then everything is in
            assert held == set(rows)
    assert any(landed), "no kill landed mid-run: the test proves nothing"
    complete(file, lib, held, rows, tmp_path)


# -- SIGKILL at exact points ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "nth", "committed"),
    [
        ("inside-transaction", 3, 2 * CHUNK),  # dies inside chunk 3's transaction: chunks 1-2 whole, none of 3
        ("after-commit", 3, 3 * CHUNK),  # dies right after chunk 3 committed, before any index file is saved
    ],
)
def test_sigkill_at_exact_points_of_a_chunk(vectors_file, tmp_path, point, nth, committed):
    file, rows = vectors_file
    lib, logs = tmp_path / "lib", tmp_path / "logs"
    run = ImportRun(file, lib, logs, point, point, nth)
    assert run.wait() == -signal.SIGKILL, run.stderr()[-2000:]
    held = check_library(lib, rows, tmp_path)
    assert held == {row_path(i) for i in range(committed)}  # chunks are all or nothing, in file order
    complete(file, lib, held, rows, tmp_path)


# -- queries alongside ----------------------------------------------------------------------------

# Searches the library again and again (argv: LIBRARY VECTORS.npy STOP_FILE), printing one JSON line per
# answer, until STOP_FILE exists: a reader that is mid-query whenever the writer dies.
READER = r"""
import json, os, sys
import numpy as np
import bindsearch
library, queries, stop = sys.argv[1], np.load(sys.argv[2]), sys.argv[3]
with bindsearch.Library.open(library) as lib:
    n = 0
    while not os.path.exists(stop):
        hits = lib.search(queries[n % len(queries)], targets=["image"], k=1)
        print(json.dumps({"query": n % len(queries), "path": hits[0].path, "score": hits[0].score}), flush=True)
        n += 1
"""


def answers(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]]


def test_queries_keep_answering_while_an_import_is_killed(vectors_file, tmp_path):
    file, rows = vectors_file
    lib, logs = tmp_path / "lib", tmp_path / "logs"
    run = ImportRun(file, lib, logs, "import", pause=0.25)  # 15 s of chunks: readers find it still writing
    deadline = time.monotonic() + TIMEOUT
    while run.reported() < 2 * CHUNK:
        assert run.proc.poll() is None and time.monotonic() < deadline, run.stderr()[-2000:]
        time.sleep(0.01)
    probes = [row_path(0), row_path(CHUNK + 1)]  # both committed by now
    np.save(tmp_path / "queries.npy", np.stack([rows[p] for p in probes]))
    (logs / "reader.py").write_text(READER)
    stop = tmp_path / "stop"
    reader, reader_out, reader_err = start(
        [sys.executable, str(logs / "reader.py"), str(lib), str(tmp_path / "queries.npy"), str(stop)], logs, "reader")
    query, query_out, query_err = start(
        [sys.executable, "-m", "bindsearch.cli", "query", "--like", probes[0], "--library", str(lib), "-k", "5",
         "--json"], logs, "query")

    while len(answers(reader_out)) < 3:  # the reader is answering: now the writer dies under it
        assert reader.poll() is None and time.monotonic() < deadline, reader_err.read_text()
        time.sleep(0.01)
    assert run.proc.poll() is None, "the import ended before it could be killed: the test proves nothing"
    run.proc.kill()
    assert run.wait() == -signal.SIGKILL
    at_kill = len(answers(reader_out))
    while len(answers(reader_out)) < at_kill + 3:
        assert reader.poll() is None and time.monotonic() < deadline, reader_err.read_text()
        time.sleep(0.01)
    stop.write_text("")
    assert reader.wait(TIMEOUT) == 0, reader_err.read_text()
    assert query.wait(TIMEOUT) == 0, query_err.read_text()

    said = answers(reader_out)
    assert all(a["path"] == probes[a["query"]] and a["score"] == pytest.approx(1.0, abs=1e-4) for a in said), said
    hits = json.loads(query_out.read_text())
    assert len(hits) == 5 and all(h["path"] in rows and h["path"] != probes[0] for h in hits), hits
    after = cli("query", "--like", probes[1], "--library", lib, "-k", "5", "--json")  # a new reader after the kill
    assert after.returncode == 0 and len(json.loads(after.stdout)) == 5, after.stderr
    held = check_library(lib, rows, tmp_path, at_least=run.reported())
    complete(file, lib, held, rows, tmp_path)
