"""Library storage: creation, the space it remembers, index files rebuilt from the vectors, search vs brute force;
on every pair of metadata and vector backends (``place``), but for what only a folder of vector files and
FAISS indexes (``folder_place``) or a SQLite file can show."""

import logging
import os
from collections import defaultdict

import numpy as np
import pytest
from helpers import write_space

import bindsearch
from bindsearch.errors import LibraryError, LibraryLockedError, SpaceMismatchError
from bindsearch.library.database import raw_cursor
from bindsearch.library.schema import SCHEMA_VERSION
from bindsearch.modality import Modality
from bindsearch.vectors import l2_normalize


@pytest.fixture
def library(place, tiny_space):
    lib = bindsearch.open_library(place("lib"), tiny_space, create=True)
    yield lib
    lib.close()


@pytest.fixture
def folder_library(folder_place, tiny_space):
    lib = bindsearch.open_library(folder_place("lib"), tiny_space, create=True)
    yield lib
    lib.close()


def test_create_then_reopen_without_naming_the_space(place, tiny_space):
    bindsearch.open_library(place("lib"), tiny_space, create=True).close()
    with bindsearch.open_library(place("lib")) as lib:
        assert lib.fingerprint == tiny_space.fingerprint
        assert lib.space.spec == tiny_space.spec  # rebuilt from what the library stored
        assert lib.dim == 64
        info = lib.info()
    assert info.schema_version == SCHEMA_VERSION
    assert info.counts == {}
    assert info.size_bytes > 0


def test_opening_with_another_space_is_refused_and_names_the_held_one(place, tmp_path, tiny_space):
    with bindsearch.open_library(place("lib"), tiny_space, create=True) as lib:
        _add_random(lib, Modality.IMAGE, 1, seed=0)
    other = write_space(tmp_path / "other.json", seed=7)
    with pytest.raises(SpaceMismatchError) as info:
        bindsearch.open_library(place("lib"), other)
    assert "openclip:inline-config/random(seed=0)" in str(info.value)
    assert tiny_space.fingerprint in str(info.value)
    # The same space given again is fine.
    bindsearch.open_library(place("lib"), tiny_space).close()


def test_missing_library_is_an_error_unless_creating(place):
    with pytest.raises(LibraryError, match="no library (at|in)"):
        bindsearch.open_library(place("nothing"))


def test_refuses_to_create_inside_a_folder_with_other_files(tmp_path, tiny_space):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "x.jpg").write_bytes(b"x")
    with pytest.raises(LibraryError, match="exists and is not a library"):
        bindsearch.open_library(tmp_path / "photos", tiny_space, create=True)


def test_corrupt_database_is_a_clear_error(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "library.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LibraryError, match="not a readable bindsearch library"):
        bindsearch.open_library(tmp_path / "lib")


def test_newer_schema_is_refused(place, tiny_space):
    with bindsearch.open_library(place("lib"), tiny_space, create=True) as lib, raw_cursor(lib._engine) as cursor:
        cursor.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        cursor.raw.connection.commit()
    with pytest.raises(LibraryError, match="schema 99, newer"):
        bindsearch.open_library(place("lib"))


def _add_random(lib, modality, n, seed, crowd=0.0):
    """``n`` random unit vectors; with ``crowd`` > 0 they lean towards one shared direction."""
    rng = np.random.default_rng(seed)
    vectors = l2_normalize(rng.normal(size=(n, lib.dim)))
    vectors = l2_normalize((1 - crowd) * vectors + crowd * l2_normalize(np.ones(lib.dim)))
    with lib.writer() as w:
        for i, v in enumerate(vectors):
            w.put(f"/data/{modality.value}/{seed}-{i}", modality, 1, 1, f"h{seed}-{i}", v)
        w.commit()
    return vectors


def test_faiss_search_matches_brute_force(library):
    vectors = _add_random(library, Modality.IMAGE, 300, seed=0)
    ids, stored = library.stored_vectors(Modality.IMAGE)
    np.testing.assert_array_equal(stored, vectors)
    queries = l2_normalize(np.random.default_rng(1).normal(size=(5, library.dim)))
    for q in queries:
        hits = library.search(q, targets=["image"], k=10)
        reference = np.argsort(-(vectors @ q), kind="stable")[:10]
        assert [h.id for h in hits] == [int(ids[i]) for i in reference]
        np.testing.assert_allclose([h.score for h in hits], (vectors @ q)[reference], rtol=1e-5, atol=1e-6)
        assert [h.rank for h in hits] == list(range(1, 11))


def test_search_merges_modalities_by_calibrated_score(library):
    image = _add_random(library, Modality.IMAGE, 20, seed=2)
    text = _add_random(library, Modality.TEXT, 20, seed=3, crowd=0.5)  # raw scores sit higher than the images'
    q = l2_normalize(image[0] + text[0] + 0.1 * np.random.default_rng(9).normal(size=library.dim))
    hits = library.search(q, k=40)
    assert len(hits) == 40 and {h.modality for h in hits} == {Modality.IMAGE, Modality.TEXT}

    def calibrated(vectors, score):
        reference = vectors @ q  # every vector is in the reference sample of so small an index
        return (score - reference.mean()) / reference.std()

    stored = {Modality.IMAGE: library.stored_vectors(Modality.IMAGE)[1],
              Modality.TEXT: library.stored_vectors(Modality.TEXT)[1]}
    for h in hits:
        assert h.calibrated == pytest.approx(float(calibrated(stored[h.modality], h.score)), rel=1e-4, abs=1e-5)
    assert [h.calibrated for h in hits] == sorted((h.calibrated for h in hits), reverse=True)
    assert [h.score for h in hits] != sorted((h.score for h in hits), reverse=True)  # not the raw order
    only_text = library.search(q, targets=["text"], k=5)
    assert {h.modality for h in only_text} == {Modality.TEXT}
    assert [h.score for h in only_text] == sorted((h.score for h in only_text), reverse=True)


def _reopen(lib):
    path = lib.location
    lib.close()
    return bindsearch.open_library(path)


def test_deleted_index_file_is_rebuilt_with_a_notice(folder_library, caplog, monkeypatch):
    monkeypatch.setenv("BINDSEARCH_EXACT_LIMIT", "100")  # an approximate index, which has a file
    vectors = _add_random(folder_library, Modality.IMAGE, 300, seed=4)
    path = folder_library.path / "index" / "image.ivf"
    assert path.is_file()
    path.unlink()
    lib = _reopen(folder_library)
    with caplog.at_level(logging.WARNING, logger="bindsearch"):
        hits = lib.search(vectors[7], targets=["image"], k=1)
    assert "building the image index" in caplog.text and "its file is missing" in caplog.text
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert path.is_file()  # written back
    lib.close()


def test_corrupt_index_file_is_rebuilt(folder_library, caplog, monkeypatch):
    monkeypatch.setenv("BINDSEARCH_EXACT_LIMIT", "100")
    vectors = _add_random(folder_library, Modality.IMAGE, 300, seed=5)
    path = folder_library.path / "index" / "image.ivf"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    lib = _reopen(folder_library)
    with caplog.at_level(logging.WARNING, logger="bindsearch"):
        assert lib.search(vectors[3], targets=["image"], k=1)[0].score == pytest.approx(1.0, abs=1e-5)
    assert "its file is unusable" in caplog.text
    lib.close()


def test_index_left_behind_by_an_unsaved_commit_is_rebuilt(library):
    _add_random(library, Modality.IMAGE, 10, seed=6)
    # A commit without the writer's closing save: what a killed run leaves.
    rng = np.random.default_rng(7)
    extra = l2_normalize(rng.normal(size=library.dim))
    writer = bindsearch.library.LibraryWriter(library)
    writer.put("/data/extra", Modality.IMAGE, 1, 1, "extra", extra)
    writer.commit()
    lib = _reopen(library)
    hits = lib.search(extra, targets=["image"], k=1)
    assert hits[0].path == "/data/extra"
    assert lib.vector_index(Modality.IMAGE).size == 11
    lib.close()


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(folder_library):
    with folder_library.writer():
        other = bindsearch.open_library(folder_library.location)
        with pytest.raises(LibraryLockedError, match=r"being written by another bindsearch process \(pid \d+"):
            with other.writer():
                pass
        other.close()
    with folder_library.writer():  # released
        pass


def test_a_library_without_vectors_takes_the_space_it_is_opened_with(place, tmp_path, tiny_space):
    other = bindsearch.load_space(write_space(tmp_path / "other.json", seed=7))
    with bindsearch.open_library(place("lib"), other, create=True) as lib, lib.writer() as w:
        w.put_failed("/data/bad.png", Modality.IMAGE, 1, 1, "empty file (0 bytes)")
        w.commit()
    with bindsearch.open_library(place("lib"), tiny_space) as lib:
        assert lib.fingerprint == tiny_space.fingerprint
        assert lib.info().failed == []
    with bindsearch.open_library(place("lib")) as lib:
        assert lib.space.fingerprint == tiny_space.fingerprint
        _add_random(lib, Modality.IMAGE, 1, seed=1)
    with pytest.raises(SpaceMismatchError):  # now it holds vectors: no more rebinding
        bindsearch.open_library(place("lib"), other)


def test_a_writer_refuses_a_library_switched_to_another_space_since_it_was_opened(place, tmp_path, tiny_space):
    other = bindsearch.load_space(write_space(tmp_path / "other.json", seed=7))
    bindsearch.open_library(place("lib"), tiny_space, create=True).close()
    first = bindsearch.open_library(place("lib"))  # no vectors yet: another open may switch it
    bindsearch.open_library(place("lib"), other).close()
    with pytest.raises(SpaceMismatchError, match="switched to another space by another process"):
        with first.writer():
            pass
    first.close()
    with bindsearch.open_library(place("lib")) as lib:
        assert lib.fingerprint == other.fingerprint
        with lib.writer():  # the lock was released
            pass


def _state(lib):
    """Everything a library holds, by path: each item's record, vector and tags, each window, and what its
    indexes answer from."""
    with raw_cursor(lib._engine) as db:
        rows = db.execute("SELECT id, path, modality, size, mtime_ns, content_hash, status, error, window_count, "
                          "duration FROM items").fetchall()
        tags = defaultdict(list)
        for item_id, tag in db.execute("SELECT item_id, tag FROM tags").fetchall():
            tags[item_id].append(tag)
        windows = sorted((bytes(path), start, end) for path, start, end in db.execute(
            "SELECT i.path, w.start, w.\"end\" FROM windows w JOIN items i ON w.item_id = i.id").fetchall())
        stored = {i for (i,) in db.execute("SELECT id FROM windows").fetchall()}
    items = {}
    for item_id, path, modality, size, mtime, digest, status, error, count, duration in rows:
        items[bytes(path), modality] = [size, mtime, digest, status, error, count, duration, sorted(tags[item_id])]
    for modality in (Modality.IMAGE, Modality.AUDIO):
        ids, vectors = lib.stored_vectors(modality)
        paths = lib.items(ids)
        for i, v in zip(ids.tolist(), vectors):
            items[os.fsencode(paths[i][0]), modality.value].append(v.tobytes())
        indexed = sorted(lib.items(lib.vector_index(modality).ids()).values())
        items["index", modality.value] = indexed
    indexed = lib.vector_index(Modality.AUDIO, windows=True).ids()
    assert set(indexed.tolist()) == stored  # (the index in this process: no window left in it, none missing)
    window_index = sorted(lib.windows(indexed).values())
    return items, windows, [(w.item_id, w.start, w.end) for w in window_index]


def test_a_commit_of_many_changes_leaves_what_a_commit_after_each_would(place, tiny_space):
    # Puts are written a run at a time (a statement per kind of change): the result must be the one of
    # writing them one by one, whatever the mix of new and existing items, repeats, windows, tags and removals.
    rng = np.random.default_rng(11)
    libs = [bindsearch.open_library(place(name), tiny_space, create=True) for name in ("batched", "one_by_one")]
    dim = libs[0].dim

    def vector():
        return l2_normalize(rng.normal(size=dim)).astype(np.float32)

    base = [(f"/m/{i}.{'wav' if i % 3 == 0 else 'png'}", Modality.AUDIO if i % 3 == 0 else Modality.IMAGE)
            for i in range(30)]
    base_ops = [("put", (p, m, i, i, f"h{i}", vector(), [(0.0, 2.0, vector())] if m is Modality.AUDIO else None,
                         ("old",) if i % 4 == 0 else ())) for i, (p, m) in enumerate(base)]
    ops = []
    for step in range(200):
        path, modality = base[int(rng.integers(0, 30))] if rng.random() < 0.6 else (
            f"/m/new{int(rng.integers(0, 40))}.png", Modality.IMAGE)
        roll = rng.random()
        if roll < 0.6:
            windows = ([(float(s), float(s) + 2.0, vector()) for s in range(int(rng.integers(0, 3)))]
                       if modality is Modality.AUDIO else None)
            ops.append(("put", (path, modality, step, step, f"g{step}", vector(), windows,
                                ("new",) if rng.random() < 0.3 else ())))
        elif roll < 0.7:
            ops.append(("failed", (path, modality, step, step, f"broken at {step}")))
        elif roll < 0.9:
            ops.append(("remove", base[int(rng.integers(0, 30))]))
        else:
            ops.append(("touch", base[int(rng.integers(0, 30))]))

    def apply(lib, writer, kind, args):
        if kind == "put":
            path, modality, size, mtime, digest, v, windows, tags = args
            writer.put(path, modality, size, mtime, digest, v, windows, tags=tags)
        elif kind == "failed":
            writer.put_failed(*args)
        else:  # by the id the item had when the batch began (as an index run stages them)
            item_id = ids.get(args)
            if item_id is None:
                return
            if kind == "remove":
                writer.remove(item_id, args[1])
                del ids[args]
            else:
                writer.touch(item_id, 7, 7)

    for lib in libs:
        with lib.writer() as writer:
            for kind, args in base_ops:
                apply(lib, writer, kind, args)
            writer.commit()
    batched, one_by_one = libs
    stored = {(p, m): i for i, (p, m) in batched.items(np.arange(1, 100)).items()}
    for lib, each in ((batched, False), (one_by_one, True)):
        ids = dict(stored)
        with lib.writer() as writer:
            for kind, args in ops:
                apply(lib, writer, kind, args)
                if each:
                    writer.commit()
            writer.commit()
    assert _state(batched) == _state(one_by_one)
    for lib in libs:
        lib.close()
