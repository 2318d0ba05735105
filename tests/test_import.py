"""``import``: vectors made elsewhere go into a library (API and CLI, on real libraries and real files)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import REPO, draw_image, write_wav

import bindsearch
from bindsearch.errors import SpaceMismatchError, UsageError
from bindsearch.modality import Modality

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"


@pytest.fixture(scope="module")
def space() -> bindsearch.Space:
    return bindsearch.load_space(TINY_IMAGEBIND)


@pytest.fixture
def source(tmp_path, space):
    """A library of four images and a note, indexed, with tags on one image."""
    media = tmp_path / "media"
    for i in range(4):
        draw_image(media / f"p{i}.png", seed=i)
    (media / "note.txt").write_text("a red car parked on a street\n")
    lib = bindsearch.open_library(tmp_path / "source-lib", space, create=True)
    assert lib.index([media], workers=0).added == 5
    lib.tag([media / "p1.png"], add=["red", "first"])
    yield lib, media
    lib.close()


def stored(lib: bindsearch.Library) -> dict[tuple[str, str], np.ndarray]:
    out = {}
    for modality in lib.counts():
        ids, vectors = lib.stored_vectors(modality)
        names = lib.items(ids.tolist())
        out.update({(names[int(i)][0], modality.value): v for i, v in zip(ids, vectors)})
    return out


def tags(lib: bindsearch.Library, folder: Path) -> dict[str, list[str]]:
    return {os.path.basename(item.path): list(item.tags) for item in lib.tag([folder])}


def cli(*args: object) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.mark.parametrize("name", ["all.npz", "all.parquet"])
def test_an_export_imports_back_with_the_same_vectors_and_tags(source, tmp_path, space, name):
    lib, media = source
    lib.export(tmp_path / name)
    with bindsearch.open_library(tmp_path / "copy", space, create=True) as copy:
        report = copy.import_vectors(tmp_path / name)
        assert (report.rows, report.imported, report.added, report.skipped) == (5, 5, 5, 0)
        assert report.modalities == {"image": 4, "text": 1} and report.fingerprint == lib.fingerprint
        expected, got = stored(lib), stored(copy)
        assert set(got) == set(expected)
        for key, vector in expected.items():
            np.testing.assert_array_equal(got[key], vector)
        assert tags(copy, media) == tags(lib, media) and tags(copy, media)["p1.png"] == ["first", "red"]
        # The FAISS index was saved as it was committed: another process finds the same neighbours.
        query = expected[(str(media / "p2.png"), "image")]
        with bindsearch.open_library(copy.path) as again:
            hits = again.search(query, targets=["image"], k=1)
        assert hits[0].path == str(media / "p2.png") and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_a_hand_made_npz_is_normalised_and_its_relative_paths_made_absolute(tmp_path, space, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 32)) * 7  # float64, not unit length
    np.savez(tmp_path / "hand.npz", paths=np.array(["a.png", "b.png", "sub/c.png"]), vectors=vectors,
             modalities=np.array("image"))
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        report = lib.import_vectors("hand.npz")
        assert (report.imported, report.without_file, report.space) == (3, 3, None)
        got = stored(lib)
    for name, vector in zip(["a.png", "b.png", "sub/c.png"], vectors):
        np.testing.assert_allclose(got[(str(tmp_path / name), "image")], vector / np.linalg.norm(vector), rtol=1e-5)


def test_bad_rows_are_reported_by_row_number_and_the_good_ones_imported(tmp_path, space):
    (tmp_path / "folder").mkdir()
    good = np.ones(32).tolist()
    rows = [
        ("/data/0.png", "image", good, ["ok"]),
        ("/data/1.png", "image", [float("nan"), *good[1:]], None),
        ("/data/2.png", "image", [0.0] * 32, None),
        ("/data/3.png", "image", good[:31], None),
        ("/data/4.png", "image", None, None),
        ("/data/5.png", "smell", good, None),
        ("", "image", good, None),
        (str(tmp_path / "folder"), "image", good, None),
        ("/data/8.wav", "audio", good, None),
        ("/data/8.wav", "audio", (-np.ones(32)).tolist(), None),
    ]
    table = pa.table({"path": [r[0] for r in rows], "modality": [r[1] for r in rows],
                      "vector": pa.array([r[2] for r in rows], type=pa.list_(pa.float64())),
                      "tags": pa.array([r[3] for r in rows], type=pa.list_(pa.string()))})
    pq.write_table(table, tmp_path / "mixed.parquet", row_group_size=4)
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        report = lib.import_vectors(tmp_path / "mixed.parquet", chunk_rows=5)  # rows 8 and 9 in one chunk
        got = stored(lib)
    assert (report.rows, report.imported, report.skipped) == (10, 2, 8)
    reasons = {bad.row: bad.reason for bad in report.bad_rows}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert "not finite" in reasons[1] and "all zero" in reasons[2] and "31 values, not 32" in reasons[3]
    assert reasons[4] == "it has no vector" and reasons[5].startswith("unknown modality 'smell'")
    assert reasons[6] == "it has no path" and "folder" in reasons[7] and "row 9" in reasons[8]
    assert set(got) == {("/data/0.png", "image"), ("/data/8.wav", "audio")}
    np.testing.assert_allclose(got[("/data/8.wav", "audio")], -np.ones(32) / np.sqrt(32), rtol=1e-6)


def test_a_modality_the_space_does_not_embed_is_a_bad_row(library, tmp_path):
    np.savez(tmp_path / "v.npz", path=np.array(["/a.wav", "/b.png"]), modality=np.array(["audio", "image"]),
             vector=np.ones((2, library.dim), np.float32))
    report = library.import_vectors(tmp_path / "v.npz")
    assert report.imported == 1 and [(b.row, b.reason) for b in report.bad_rows] == [
        (0, f"space {library.space_name} does not embed audio")]


def test_a_file_of_another_dimension_or_space_is_refused_whole(tmp_path, space, library):
    np.savez(tmp_path / "small.npz", path=np.array(["/a.png"]), modality=np.array("image"),
             vector=np.ones((1, 16), np.float32))
    seed_1 = json.loads(TINY_IMAGEBIND.read_text()) | {"seed": 1}  # same dimension, other weights
    (tmp_path / "seed1.json").write_text(json.dumps(seed_1))
    with bindsearch.open_library(tmp_path / "seed1-lib", tmp_path / "seed1.json", create=True) as seed1_lib:
        np.savez(tmp_path / "seed1.npz", path=np.array(["/a.png"]), modality=np.array("image"),
                 vector=np.ones((1, 32), np.float32), space=np.array(seed1_lib.space_name),
                 fingerprint=np.array(seed1_lib.fingerprint))
        theirs = seed1_lib.fingerprint
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        with pytest.raises(UsageError, match=r"its vectors have 16 values, those of library .* 32; nothing"):
            lib.import_vectors(tmp_path / "small.npz")
        with pytest.raises(SpaceMismatchError, match=rf"fingerprint {theirs}.*fingerprint {lib.fingerprint}"):
            lib.import_vectors(tmp_path / "seed1.npz")
        assert lib.counts() == {}
    library_file = tmp_path / "from-openclip.npz"  # (the ``library`` fixture is of the tiny OpenCLIP space)
    np.savez(library_file, path=np.array(["/a.png"]), modality=np.array("image"),
             vector=np.ones((1, library.dim), np.float32), fingerprint=np.array(library.fingerprint))
    with bindsearch.open_library(tmp_path / "lib") as lib, pytest.raises(SpaceMismatchError):
        lib.import_vectors(library_file)


class _Planted:
    """What unpickling this creates is a file: proof that an object array was loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_an_object_array_is_refused_and_never_unpickled(tmp_path, space):
    marker = tmp_path / "unpickled"
    paths = np.empty(1, dtype=object)
    paths[0] = _Planted(str(marker))
    with open(tmp_path / "objects.npz", "wb") as f:
        np.savez(f, path=paths, modality=np.array("image"), vector=np.ones((1, 32), np.float32))
    assert not marker.exists()
    pickle.dumps(paths[0])  # (what np.savez stored, for an unpickler to run)
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        with pytest.raises(UsageError, match=r"its array 'path' holds Python objects"):
            lib.import_vectors(tmp_path / "objects.npz")
    assert not marker.exists()
    done = cli("import", tmp_path / "objects.npz", "--library", tmp_path / "lib")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: cannot import") and not marker.exists()


def test_an_imported_file_is_unchanged_for_index_and_a_hashed_one_is_known_when_moved(source, tmp_path, space):
    lib, media = source
    lib.export(tmp_path / "all.npz")
    with bindsearch.open_library(tmp_path / "copy", space, create=True) as copy:
        copy.import_vectors(tmp_path / "all.npz")
        before = stored(copy)
        report = copy.index([media], workers=0)
        assert (report.unchanged, report.added, report.updated, report.embedded, report.removed) == (5, 0, 0, 0, 0)
        after = stored(copy)
        assert set(after) == set(before) and all(np.array_equal(after[k], v) for k, v in before.items())
    with bindsearch.open_library(tmp_path / "hashed", space, create=True) as hashed:
        hashed.import_vectors(tmp_path / "all.npz", hash_files=True)
        (media / "moved").mkdir()
        shutil.move(media / "p3.png", media / "moved" / "p3.png")
        report = hashed.index([media], workers=0)
        assert (report.moved, report.embedded, report.removed) == (1, 0, 0)
        np.testing.assert_array_equal(stored(hashed)[(str(media / "moved" / "p3.png"), "image")],
                                      before[(str(media / "p3.png"), "image")])


def test_an_audio_item_imported_over_loses_its_windows(tmp_path, space):
    sound = write_wav(tmp_path / "media" / "long.wav", seconds=9.0)
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        lib.index([tmp_path / "media"], workers=0)
        assert lib.vector_index(Modality.AUDIO, windows=True).size > 0
        np.savez(tmp_path / "v.npz", path=np.array([str(sound)]), modality=np.array("audio"),
                 vector=np.ones((1, 32), np.float32), tags=np.array(['["imported"]']))
        assert lib.import_vectors(tmp_path / "v.npz").updated == 1
        assert lib.vector_index(Modality.AUDIO, windows=True).size == 0
        [hit] = lib.search(np.ones(32, np.float32) / np.sqrt(32), targets=["audio"], k=5, windows=True)
        assert hit.path == str(sound) and hit.start is None and hit.tags == ("imported",)
        assert lib.index([tmp_path / "media"], workers=0).unchanged == 1  # and not cut again


def test_a_path_without_a_file_is_kept_by_index_runs_until_removed(tmp_path, space):
    photos = tmp_path / "photos"
    draw_image(photos / "here.png", seed=1)
    gone = photos / "never-here.png"
    np.savez(tmp_path / "v.npz", path=np.array([str(gone)]), modality=np.array("image"),
             vector=np.ones((1, 32), np.float32))
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        assert lib.import_vectors(tmp_path / "v.npz").without_file == 1
        report = lib.index([photos], workers=0)
        assert (report.added, report.removed) == (1, 0)
        assert {Path(p).name for p, _ in stored(lib)} == {"here.png", "never-here.png"}
        assert [r.path for r in lib.remove([gone])] == [str(gone)]
        assert {Path(p).name for p, _ in stored(lib)} == {"here.png"}


def test_an_item_held_already_gets_the_new_vector_and_keeps_its_tags(source, tmp_path):
    lib, media = source
    target = str(media / "p1.png")
    np.savez(tmp_path / "v.npz", path=np.array([target]), modality=np.array("image"),
             vector=np.full((1, 32), 2.0, np.float32), tags=np.array(['["new", "red"]']))
    report = lib.import_vectors(tmp_path / "v.npz")
    assert (report.added, report.updated) == (0, 1)
    np.testing.assert_allclose(stored(lib)[(target, "image")], np.full(32, 1 / np.sqrt(32)), rtol=1e-6)
    assert tags(lib, media)["p1.png"] == ["first", "new", "red"]
    assert lib.vector_index(Modality.IMAGE).size == 4


def test_ctrl_c_keeps_the_chunks_committed(tmp_path, space):
    np.savez(tmp_path / "v.npz", path=np.array([f"/data/{i}.png" for i in range(10)]), modality=np.array("image"),
             vector=np.ones((10, 32), np.float32))

    def stop_after_the_first(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        report = lib.import_vectors(tmp_path / "v.npz", chunk_rows=4, progress=stop_after_the_first)
        assert report.interrupted and report.imported == 4
    with bindsearch.open_library(tmp_path / "lib") as lib:
        assert lib.counts() == {Modality.IMAGE: 4} and lib.vector_index(Modality.IMAGE).size == 4


def test_the_command_line_prints_the_report_as_json_and_errors_as_one_line(source, tmp_path):
    lib, _ = source
    lib.export(tmp_path / "all.parquet")
    done = cli("import", tmp_path / "all.parquet", "--library", tmp_path / "new", "--space", TINY_IMAGEBIND, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["imported"], report["format"], report["bad_rows"]) == (5, "parquet", [])
    np.savez(tmp_path / "bad.npz", path=np.array(["/x.png", "/y.png"]), modality=np.array("image"),
             vector=np.stack([np.ones(32), np.zeros(32)]).astype(np.float32))
    done = cli("import", tmp_path / "bad.npz", "--library", tmp_path / "new")
    assert done.returncode == 3 and "added 1" in done.stderr
    assert "skipped row 1 (/y.png): its vector is all zero" in done.stderr
    np.savez(tmp_path / "wide.npz", path=np.array(["/x.png"]), modality=np.array("image"),
             vector=np.ones((1, 64), np.float32))
    for args, start in [((tmp_path / "wide.npz",), "error: cannot import"),
                        ((tmp_path / "missing.npz",), "error: cannot import"),
                        ((tmp_path / "vectors.csv",), "error: cannot import")]:
        done = cli("import", *args, "--library", tmp_path / "new")
        assert done.returncode == 2 and done.stderr.startswith(start), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    # A new library is not made for a file it could not take.
    done = cli("import", tmp_path / "wide.npz", "--library", tmp_path / "never", "--space", TINY_IMAGEBIND)
    assert done.returncode == 2 and "64 values" in done.stderr and not (tmp_path / "never").exists()


def test_ctrl_c_on_the_command_line_exits_130_and_keeps_whole_chunks(tmp_path):
    rows = 400_000
    np.savez(tmp_path / "big.npz", path=np.array([f"/data/{i:07d}.png" for i in range(rows)]),
             modality=np.array("image"), vector=np.ones((rows, 32), np.float32))
    library = tmp_path / "lib"
    proc = subprocess.Popen([sys.executable, "-m", "bindsearch.cli", "import", str(tmp_path / "big.npz"),
                             "--library", str(library), "--space", str(TINY_IMAGEBIND)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and _items(library) == 0:
            time.sleep(0.02)
        assert proc.poll() is None, "the import ended before it could be interrupted: the test proves nothing"
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] in (
        "interrupted: the rows imported so far are kept; run the same command again to finish", "error: interrupted")
    kept = _items(library)
    assert 0 < kept < rows and kept % 10_000 == 0
    with bindsearch.open_library(library) as lib:
        assert lib.vector_index(Modality.IMAGE).size == kept


def _items(library: Path) -> int:
    try:
        with sqlite3.connect(f"file:{library / 'library.sqlite'}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(*) FROM items").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_without_pyarrow_a_parquet_import_says_what_to_install(tmp_path):
    pq.write_table(pa.table({"path": ["/a.png"], "modality": ["image"], "vector": [[1.0] * 32]}),
                   tmp_path / "v.parquet")
    code = ("import sys; sys.modules['pyarrow'] = None\n"  # as if it were not installed
            "from bindsearch.cli.app import main; sys.argv[1:] = sys.argv[2:]; main()")
    done = subprocess.run([sys.executable, "-c", code, "-", "import", str(tmp_path / "v.parquet"),
                           "--library", str(tmp_path / "lib")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "error: importing a .parquet file needs pyarrow: pip install 'bindsearch[parquet]'"
