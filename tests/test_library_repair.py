"""A library that already holds vectors that are not finite is repaired when it is opened, once."""

import logging
import math
import subprocess
import sys
import time

import numpy as np
import pytest

import bindsearch
from bindsearch.library.soundness import CHECKED_KEY, UNUSABLE_STORED
from bindsearch.modality import Modality
from bindsearch.search import QueryTerm


def poison(lib_path, item_ids=(), window_ids=(), dim=64):
    """Overwrite stored vectors with NaN (their rows' checksums made to match, so the file is not damaged),
    as versions that did not check vectors could store them, and forget that the library was checked."""
    import sqlite3
    import zlib

    nan = np.full(dim, np.nan, dtype="<f4").tobytes()
    conn = sqlite3.connect(str(lib_path / "library.sqlite"))
    with conn:
        for table, ids, suffix in (("items", item_ids, ""), ("windows", window_ids, ".windows")):
            for row_id in ids:
                if table == "items":
                    slot, modality = conn.execute("SELECT slot, modality FROM items WHERE id = ?", (row_id,)).fetchone()
                else:
                    slot, modality = conn.execute("SELECT w.slot, i.modality FROM windows w JOIN items i "
                                                  "ON i.id = w.item_id WHERE w.id = ?", (row_id,)).fetchone()
                with open(lib_path / "vectors" / f"{modality}{suffix}.f32", "r+b") as f:
                    f.seek(4096 + slot * 4 * dim)
                    f.write(nan)
                conn.execute(f"UPDATE {table} SET crc = ? WHERE id = ?", (zlib.crc32(nan), row_id))
        conn.execute("DELETE FROM meta WHERE key = ?", (CHECKED_KEY,))
    conn.close()


def item_id_of(lib, path):
    ids, _ = lib.stored_vectors(Modality.IMAGE)
    return next(i for i, (p, _) in lib.items(ids).items() if p == str(path))


def searched_paths(lib):
    hits = lib.search([QueryTerm.text("a dog")], k=20)
    assert all(math.isfinite(h.score) and math.isfinite(h.calibrated) for h in hits)
    return {h.path for h in hits}


def test_an_unusable_stored_vector_is_marked_failed_once_and_left_out(tmp_path, tiny_space_file, media, caplog):
    lib_path = tmp_path / "lib"
    with bindsearch.open_library(lib_path, tiny_space_file, create=True) as lib:
        lib.index([media])
        bad = item_id_of(lib, media / "a.png")
        everything = searched_paths(lib)
    poison(lib_path, [bad])

    with caplog.at_level(logging.WARNING, logger="bindsearch"):
        with bindsearch.open_library(lib_path) as lib:
            assert lib.counts() == {Modality.IMAGE: 3, Modality.TEXT: 2}
            assert [(f.path, f.reason) for f in lib.info().failed] == [(str(media / "a.png"), UNUSABLE_STORED)]
            assert searched_paths(lib) == everything - {str(media / "a.png")}
            assert lib.vector_index(Modality.IMAGE).size == 3
    notices = [r.getMessage() for r in caplog.records if "not finite" in r.getMessage()]
    assert len(notices) == 1 and str(media / "a.png") in notices[0] and "marked failed" in notices[0]

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bindsearch"):
        with bindsearch.open_library(lib_path) as lib:
            assert lib._meta[CHECKED_KEY] == "1"  # checked once: later opens read no vector
            report = lib.index([media])  # the file itself is fine: indexing it again brings it back
            assert (report.added, report.failed) == (1, 0)
            assert searched_paths(lib) == everything
    assert not [r for r in caplog.records if "not finite" in r.getMessage()]


def test_an_unusable_window_vector_fails_its_item_and_all_its_windows(tmp_path, tiny_space):
    lib_path = tmp_path / "lib"
    rng = np.random.default_rng(0)

    def unit():
        v = rng.normal(size=tiny_space.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    with bindsearch.open_library(lib_path, tiny_space, create=True) as lib:
        with lib.writer() as writer:
            for name in ("long.wav", "other.wav"):
                writer.put(f"/sounds/{name}", Modality.AUDIO, 1, 1, name, unit(),
                           [(0.0, 6.0, unit()), (2.0, 8.0, unit())], duration=8.0)
            writer.commit()
        [first, *_] = [w[0] for w in lib.windows_of(1, with_ids=True)]
    poison(lib_path, window_ids=[first], dim=tiny_space.dim)
    with bindsearch.open_library(lib_path) as lib:
        assert lib.counts() == {Modality.AUDIO: 1}
        assert lib.vector_index(Modality.AUDIO).ids().tolist() == [2]
        assert lib.vector_index(Modality.AUDIO, windows=True).size == 2
        assert lib.windows_of(1) == []
        hits = lib.search(unit(), k=5)
        assert [h.path for h in hits] == ["/sounds/other.wav"] and math.isfinite(hits[0].calibrated)


_HOLD_LOCK = """
import sys, time
from bindsearch.library.lock import WriterLock
with WriterLock(sys.argv[1], "lib"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_library_being_written_elsewhere_is_repaired_in_memory_only(tmp_path, tiny_space_file, media, caplog):
    lib_path = tmp_path / "lib"
    with bindsearch.open_library(lib_path, tiny_space_file, create=True) as lib:
        lib.index([media])
        bad = item_id_of(lib, media / "a.png")
        everything = searched_paths(lib)
    poison(lib_path, [bad])
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(lib_path / "write.lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with caplog.at_level(logging.WARNING, logger="bindsearch"):
            with bindsearch.open_library(lib_path) as lib:
                assert searched_paths(lib) == everything - {str(media / "a.png")}
                assert lib.counts() == {Modality.IMAGE: 4, Modality.TEXT: 2}  # nothing written
                assert CHECKED_KEY not in lib._meta
        assert any("cannot be written to now" in r.getMessage() for r in caplog.records)
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the lock goes with its process
        with bindsearch.open_library(lib_path) as lib:
            if lib._meta.get(CHECKED_KEY) == "1":
                assert [f.reason for f in lib.info().failed] == [UNUSABLE_STORED]
                break
        time.sleep(0.2)
    else:
        pytest.fail("the library was not repaired once it could be written to")
