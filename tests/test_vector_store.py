"""The vector file: rows written once, read back exactly, in any order, by this process and others.

Checked against plain numpy arrays and zlib: what is appended reads back bit for bit, CRC-32s are
those of the rows' bytes, a torn last row is cut, a writer killed by SIGKILL loses nothing it
reported as durable, readers see later appends, a damaged row is found, unused rows give their disk
space back, and reading a few rows of a large file keeps this process small.
"""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from bindsearch.errors import VectorFileError
from bindsearch.library.vector_store import HEADER_BYTES, VectorStore, row_crcs

DIM = 16
TIMEOUT = 60  # seconds a child process may take on a slow, busy machine


def pattern(first: int, n: int, dim: int):
    """Rows for slots first..first+n-1: distinct, and the same whichever process makes them."""
    import numpy as np

    slots = np.arange(first, first + n, dtype=np.float64)[:, None]
    return (np.sin(slots * 0.7 + np.arange(dim) * 1.3) * (1 + slots % 97)).astype(np.float32)


def filled(path: Path, rows: int, dim: int = DIM, batch: int = 1000) -> Path:
    with VectorStore(path, dim, writable=True) as store:
        for first in range(0, rows, batch):
            store.append(pattern(first, min(batch, rows - first), dim))
    return path


def run_child(code: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# -- writing and reading back --------------------------------------------------------------------


def test_rows_read_back_exactly_in_the_order_asked(tmp_path: Path) -> None:
    path = tmp_path / "image.f32"
    with VectorStore(path, DIM, writable=True) as store:
        slots_a, crcs_a = store.append(pattern(0, 7, DIM))
        slots_b, crcs_b = store.append(pattern(7, 5, DIM).astype(np.float64))  # converted to float32
        assert store.rows == 12
    assert slots_a.tolist() == list(range(7)) and slots_b.tolist() == list(range(7, 12))
    assert slots_a.dtype == np.int64 and crcs_a.dtype == np.uint32
    expected = pattern(0, 12, DIM)
    assert np.concatenate([crcs_a, crcs_b]).tolist() == [zlib.crc32(row.astype("<f4").tobytes()) for row in expected]
    assert os.path.getsize(path) == HEADER_BYTES + 12 * DIM * 4
    with VectorStore(path, DIM) as reader:
        assert reader.rows == 12
        asked = np.array([11, 0, 3, 3, 4, 5, 10, 2])  # unsorted, with a repeat and a run
        got = reader.read(asked)
        assert got.dtype == np.float32 and got.shape == (8, DIM)
        assert np.array_equal(got, expected[asked])
        assert reader.read(np.array([], dtype=np.int64)).shape == (0, DIM)
        assert np.array_equal(reader.read(range(12)), expected)


def test_any_slots_read_as_numpy_indexing_would(tmp_path: Path) -> None:
    """Random sets: repeats, runs asked in order, runs asked backwards, single rows, all mixed."""
    store = VectorStore(filled(tmp_path / "v.f32", 300), DIM)
    reference = pattern(0, 300, DIM)
    rng = np.random.default_rng(3)
    for _ in range(200):
        pieces = [rng.integers(0, 300, rng.integers(0, 6))]
        for _ in range(rng.integers(0, 4)):
            start = int(rng.integers(0, 290))
            run = np.arange(start, start + int(rng.integers(1, 10)))
            pieces.append(run[::-1] if rng.random() < 0.3 else run)
        rng.shuffle(pieces)
        asked = np.concatenate(pieces).astype(np.int64)
        assert np.array_equal(store.read(asked), reference[asked]), asked.tolist()


def test_row_crcs_are_zlib_crc32_of_each_rows_bytes() -> None:
    rows = pattern(3, 9, 5).astype("<f4")
    assert row_crcs(rows).tolist() == [zlib.crc32(bytes(row.data)) for row in rows]
    with pytest.raises(ValueError, match="float32"):
        row_crcs(rows.astype(np.float64))


def test_chunks_stream_the_rows_asked_in_order(tmp_path: Path) -> None:
    store = VectorStore(filled(tmp_path / "v.f32", 50), DIM)
    asked = np.random.default_rng(0).permutation(50)[:37]
    blocks = list(store.chunks(asked, size=8))
    assert [b.shape[0] for b in blocks] == [8, 8, 8, 8, 5]
    assert np.array_equal(np.concatenate(blocks), pattern(0, 50, DIM)[asked])
    assert np.array_equal(np.concatenate(list(store.chunks(size=16))), pattern(0, 50, DIM))
    with pytest.raises(ValueError, match="positive"):
        store.chunks(asked, size=0)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with VectorStore(tmp_path / "v.f32", DIM, writable=True) as store:
        with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
            store.append(np.zeros((3, DIM + 1), np.float32))
        with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
            store.append(np.zeros(DIM, np.float32))
        slots, crcs = store.append(np.zeros((0, DIM), np.float32))
        assert slots.size == 0 and crcs.size == 0 and store.rows == 0
        store.append(pattern(0, 3, DIM))
        with pytest.raises(ValueError, match="integers"):
            store.read(np.array([0.5]))
    with VectorStore(tmp_path / "v.f32", DIM) as reader, pytest.raises(ValueError, match="reading only"):
        reader.append(pattern(3, 1, DIM))
    with pytest.raises(ValueError, match="positive"):
        VectorStore(tmp_path / "w.f32", 0, writable=True)


def test_slots_beyond_the_end_are_a_clear_error(tmp_path: Path) -> None:
    store = VectorStore(filled(tmp_path / "v.f32", 10), DIM)
    for asked in ([3, 10], [99], [-1]):
        with pytest.raises(VectorFileError, match=r"v\.f32") as caught:
            store.read(np.array(asked))
        assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)
    with pytest.raises(VectorFileError, match="slot 12 is beyond its end"):
        store.chunks(np.array([1, 12]))  # refused at once, before any chunk is asked for


# -- files that are not vector files -------------------------------------------------------------


def test_files_of_another_kind_are_refused_naming_the_file(tmp_path: Path) -> None:
    filled(tmp_path / "v.f32", 4)
    cases = {
        "dim": (tmp_path / "v.f32", "holds 16-dimensional vectors, not 32"),
        "magic": (tmp_path / "magic.f32", "not a bindsearch vector file"),
        "short": (tmp_path / "short.f32", "header is incomplete"),
        "version": (tmp_path / "version.f32", "of format 9"),
        "missing": (tmp_path / "missing.f32", "is missing"),
        "folder": (tmp_path / "folder.f32", "is a directory"),
    }
    header = (tmp_path / "v.f32").read_bytes()[:HEADER_BYTES]
    cases["magic"][0].write_bytes(b"PK\x03\x04" + header[4:])
    cases["short"][0].write_bytes(header[:20])
    cases["version"][0].write_bytes(header[:8] + (9).to_bytes(4, "little") + header[12:])
    cases["folder"][0].mkdir()
    for name, (path, words) in cases.items():
        with pytest.raises(VectorFileError, match=words) as caught:
            VectorStore(path, 32 if name == "dim" else DIM, writable=name not in ("missing", "folder"))
        assert str(path) in str(caught.value), name
    assert (tmp_path / "magic.f32").read_bytes()[:4] == b"PK\x03\x04"  # refused, not overwritten


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("writable", [False, True])
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path, writable: bool) -> None:
    fifo = tmp_path / "v.f32"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def open_it() -> None:
        try:
            VectorStore(fifo, DIM, writable=writable)
        except BaseException as exc:
            outcome.append(exc)

    opener = threading.Thread(target=open_it, daemon=True)
    opener.start()
    opener.join(10)
    assert not opener.is_alive(), "opening a FIFO waited for a writer"
    assert isinstance(outcome[0], VectorFileError) and "FIFO" in str(outcome[0]) and str(fifo) in str(outcome[0])


# -- crashes, torn rows, several processes -------------------------------------------------------


def test_a_torn_last_row_is_cut_when_opened_for_writing(tmp_path: Path) -> None:
    path = filled(tmp_path / "v.f32", 6)
    with open(path, "ab") as f:
        f.write(pattern(6, 1, DIM).tobytes()[:37])  # what a killed append can leave
    with VectorStore(path, DIM) as reader:  # a reader sees whole rows only, and changes nothing
        assert reader.rows == 6
        with pytest.raises(VectorFileError):
            reader.read([6])
    assert os.path.getsize(path) == HEADER_BYTES + 6 * DIM * 4 + 37
    with VectorStore(path, DIM, writable=True) as store:
        assert store.rows == 6 and os.path.getsize(path) == HEADER_BYTES + 6 * DIM * 4
        slots, _ = store.append(pattern(6, 2, DIM))
        assert slots.tolist() == [6, 7]
        assert np.array_equal(store.read(range(8)), pattern(0, 8, DIM))


def test_a_second_writer_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    first = VectorStore(tmp_path / "v.f32", DIM, writable=True)
    with pytest.raises(VectorFileError, match="already open for writing"):
        VectorStore(tmp_path / "v.f32", DIM, writable=True)
    first.close()
    VectorStore(tmp_path / "v.f32", DIM, writable=True).close()


APPENDER = inspect.getsource(pattern) + """
import sys
from bindsearch.library.vector_store import VectorStore

path, dim, batch, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with VectorStore(path, dim, writable=True) as store:
    for _ in range(batches):
        rows = pattern(store.rows, batch, dim)
        print("appending", flush=True)
        slots, _ = store.append(rows)
        print(int(slots[-1]), flush=True)  # durable from here on
"""


def test_a_reader_sees_rows_another_process_appends_after_it_opened(tmp_path: Path) -> None:
    path = filled(tmp_path / "v.f32", 10)
    reader = VectorStore(path, DIM)
    child = run_child(APPENDER, path, DIM, 5, 2)
    out, err = child.communicate(timeout=TIMEOUT)
    assert child.returncode == 0, err
    assert out.split() == ["appending", "14", "appending", "19"]
    assert np.array_equal(reader.read([19, 12]), pattern(0, 20, DIM)[[19, 12]])  # before asking .rows
    assert reader.rows == 20


def killed_while_appending(path: Path, dim: int, reported_before: int, delay: float) -> int:
    """Start an appender, SIGKILL it ``delay`` seconds into the append after ``reported_before`` were
    reported: the last slot it reported as durable."""
    child = run_child(APPENDER, path, dim, 3000, 10**6)  # 3 MB a batch: long enough to be cut in the middle
    reported, started = -1, 0
    try:
        while started <= reported_before:
            line = child.stdout.readline().strip()
            assert line, child.stderr.read()
            if line == "appending":
                started += 1
            else:
                reported = int(line)
        time.sleep(delay)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=TIMEOUT)
    assert child.returncode == -signal.SIGKILL
    return reported


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_a_writer_killed_mid_append_loses_nothing_it_reported(tmp_path: Path) -> None:
    dim, cut_inside = 256, 0
    for number, (kill_after, delay) in enumerate([(0, 0.0), (1, 0.001), (3, 0.0), (5, 0.003), (8, 0.0)]):
        path = tmp_path / f"v{number}.f32"
        reported = killed_while_appending(path, dim, kill_after, delay)
        size = os.path.getsize(path)
        cut_inside += size > HEADER_BYTES + (reported + 1) * dim * 4  # rows (or part of one) never reported
        with VectorStore(path, dim, writable=True) as store:
            whole = store.rows
            assert whole >= reported + 1 and os.path.getsize(path) == HEADER_BYTES + whole * dim * 4
            assert np.array_equal(store.read(range(reported + 1)), pattern(0, reported + 1, dim))
            slots, _ = store.append(pattern(whole, 2, dim))
            assert slots.tolist() == [whole, whole + 1]
            assert np.array_equal(store.read(slots), pattern(whole, 2, dim))
    assert cut_inside > 0, "no kill landed inside an append"


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs file size limits")
def test_a_failed_append_leaves_the_file_at_whole_rows(tmp_path: Path) -> None:
    """A write cut short by the system (here a file size limit, as a full disk would) is undone."""
    path = filled(tmp_path / "v.f32", 2)
    limit = HEADER_BYTES + int(3.5 * DIM * 4)
    code = inspect.getsource(pattern) + f"""
import resource, signal, sys
from bindsearch.library.vector_store import VectorStore
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
with VectorStore(sys.argv[1], {DIM}, writable=True) as store:
    store.append(pattern(2, 1, {DIM}))
    try:
        store.append(pattern(3, 4, {DIM}))
    except OSError as exc:
        print("refused", exc.errno, store.rows)
"""
    child = run_child(code, path)
    out, err = child.communicate(timeout=TIMEOUT)
    assert child.returncode == 0, err
    assert out.split()[0] == "refused" and out.split()[2] == "3"
    assert os.path.getsize(path) == HEADER_BYTES + 3 * DIM * 4
    with VectorStore(path, DIM, writable=True) as store:
        assert np.array_equal(store.read(range(3)), pattern(0, 3, DIM))


# -- damage and unused rows -----------------------------------------------------------------------


def test_verify_names_the_damaged_rows_and_those_beyond_the_end(tmp_path: Path) -> None:
    path = tmp_path / "v.f32"
    with VectorStore(path, DIM, writable=True) as store:
        slots, crcs = store.append(pattern(0, 40, DIM))
    store = VectorStore(path, DIM)
    assert store.verify(slots, crcs).size == 0
    with open(path, "r+b") as f:  # one flipped bit in row 17, one in row 3
        for row, byte in ((17, 5), (3, 60)):
            f.seek(HEADER_BYTES + row * DIM * 4 + byte)
            value = f.read(1)[0]
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([value ^ 0x10]))
    asked = np.array([17, 39, 3, 0, 45])
    assert store.verify(asked, np.append(crcs[asked[:4]], 0)).tolist() == [17, 3, 45]
    with pytest.raises(ValueError, match="checksums"):
        store.verify(asked, crcs[:2])


def test_unused_rows_give_their_blocks_back_and_live_rows_stay_as_they_were(tmp_path: Path) -> None:
    dim = 1024  # a row is one 4 KiB block, after a header of one block
    path = tmp_path / "image.f32"
    with VectorStore(path, dim, writable=True) as store:
        slots, crcs = store.append(pattern(0, 300, dim))
        live = np.concatenate([np.arange(0, 100), np.arange(200, 250), np.arange(250, 300, 3)])
        before = store.allocated_bytes
        freed = store.free_unused(live)
        # Rows 100-199 and the runs of two between every third row of 250-299 hold no live row (less what the
        # file system may take for the map of a file now in 19 pieces: ext4 an extent block).
        expected = (100 + 2 * 16 + 1) * dim * 4
        assert expected - 4 * 4096 <= freed <= expected
        assert store.allocated_bytes == before - freed
        with open(path, "rb") as f:  # each unused run is a hole now, each live row data
            def byte(row: int) -> int:
                return HEADER_BYTES + row * dim * 4

            for first, end in [(100, 200), (251, 253), (296, 298)]:
                assert os.lseek(f.fileno(), byte(first), os.SEEK_HOLE) == byte(first)
                assert os.lseek(f.fileno(), byte(first), os.SEEK_DATA) == byte(end)
            assert os.lseek(f.fileno(), byte(299), os.SEEK_HOLE) == byte(299)
        assert os.path.getsize(path) == HEADER_BYTES + 300 * dim * 4  # every slot keeps its place
        assert store.verify(slots[live], crcs[live]).size == 0
        assert np.array_equal(store.read(live), pattern(0, 300, dim)[live])
        assert not store.read(np.arange(100, 200)).any()  # a hole reads as zeros
        assert store.free_unused(live) == 0  # nothing left to free
        more, _ = store.append(pattern(300, 2, dim))  # appends go on after the holes
        assert more.tolist() == [300, 301]
    with VectorStore(path, dim) as reader:
        assert np.array_equal(reader.read([301, 0]), pattern(0, 302, dim)[[301, 0]])
        with pytest.raises(ValueError, match="reading only"):
            reader.free_unused(live)


# -- memory --------------------------------------------------------------------------------------


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_reading_a_few_rows_keeps_the_process_small(tmp_path: Path) -> None:
    rows, dim = 200_000, 256  # 200 MB of vectors
    path = filled(tmp_path / "big.f32", rows, dim, batch=10_000)
    store = VectorStore(path, dim)
    before = _kib("VmRSS")
    asked = np.random.default_rng(2).integers(0, rows, 500)
    got = store.read(asked)
    assert np.array_equal(got[:3], np.concatenate([pattern(int(s), 1, dim) for s in asked[:3]]))
    assert _kib("VmRSS") - before < 20 * 1024, "reading 500 rows brought much of a 200 MB file into memory"
