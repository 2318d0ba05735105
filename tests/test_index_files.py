"""A damaged FAISS index file is caught when it is loaded and rebuilt from SQLite, never searched or copied."""

import logging

import numpy as np
import pytest

import bindsearch
from bindsearch.library.vector_index import VectorIndex
from bindsearch.modality import Modality
from bindsearch.vectors import l2_normalize

N = 60


def add_random(lib, n=N, seed=0):
    rng = np.random.default_rng(seed)
    vectors = l2_normalize(rng.normal(size=(n, lib.dim)))
    with lib.writer() as writer:
        for i, v in enumerate(vectors):
            writer.put(f"/data/{seed}-{i}.png", Modality.IMAGE, 1, 1, f"h{seed}-{i}", v)
        writer.commit()
    return vectors


def index_file(library_path):
    [path] = (library_path / "index").glob("image-g*.faiss")
    return path


def results(lib, query):
    return [(h.id, round(h.score, 6)) for h in lib.search(query, targets=["image"], k=N)]


@pytest.fixture
def filled(tmp_path, tiny_space):
    """A library of N image vectors, the answers to a query before any damage, and a query."""
    path = tmp_path / "lib"
    with bindsearch.open_library(path, tiny_space, create=True) as lib:
        vectors = add_random(lib)
        query = vectors[3]
        before = results(lib, query)
    return path, before, query


def check_rebuilt(path, before, query, caplog, reason):
    with caplog.at_level(logging.WARNING, logger="bindsearch"):
        with bindsearch.open_library(path) as lib:
            hits = lib.search(query, targets=["image"], k=N)
            assert all(-1.0 <= h.score <= 1.0 for h in hits)
            assert results(lib, query) == before
            ids, stored = lib.stored_vectors(Modality.IMAGE)
            on_disk = VectorIndex.load(str(index_file(lib.path)), lib.dim)  # written back, sound
            np.testing.assert_array_equal(on_disk.vectors(ids), stored)
    assert "rebuilt the image index" in caplog.text and reason in caplog.text


def test_vector_bytes_overwritten_after_a_valid_header_are_caught(filled, caplog):
    path, before, query = filled
    with bindsearch.open_library(path) as lib:
        _ids, stored = lib.stored_vectors(Modality.IMAGE)
    file = index_file(path)
    data = bytearray(file.read_bytes())
    at = bytes(data).find(stored[10].astype("<f4").tobytes())
    assert at > 0
    data[at : at + 4 * stored.shape[1]] = np.full(stored.shape[1], 1e18, "<f4").tobytes()  # cosines of 1e37
    file.write_bytes(bytes(data))
    check_rebuilt(path, before, query, caplog, "its checksum does not match")


def test_the_next_run_does_not_copy_a_damaged_file_into_the_new_one(filled, caplog):
    path, _, _query = filled
    file = index_file(path)
    data = bytearray(file.read_bytes())
    data[200:260] = b"\x7f" * 60
    file.write_bytes(bytes(data))
    with bindsearch.open_library(path) as lib:
        add_random(lib, n=5, seed=1)  # a writer loads the index, adds to it and saves it
    with bindsearch.open_library(path) as lib:
        ids, stored = lib.stored_vectors(Modality.IMAGE)
        on_disk = VectorIndex.load(str(index_file(lib.path)), lib.dim)
        assert on_disk.size == N + 5
        np.testing.assert_array_equal(on_disk.vectors(ids), stored)


def _rewrite(path, ids_of):
    """Save the image index again (with a valid checksum) with the ids ``ids_of(ids)`` gives."""
    with bindsearch.open_library(path) as lib:
        ids, stored = lib.stored_vectors(Modality.IMAGE)
        file = index_file(lib.path)
        other = VectorIndex(lib.dim)
        other.add(ids_of(ids), stored)
        other.save(str(file))


def test_shuffled_ids_are_caught(filled, caplog):
    path, before, query = filled
    _rewrite(path, lambda ids: np.random.default_rng(0).permutation(ids))
    check_rebuilt(path, before, query, caplog, "is not the library's")


def test_foreign_ids_are_caught(filled, caplog):
    path, before, query = filled
    _rewrite(path, lambda ids: ids + 10_000)
    check_rebuilt(path, before, query, caplog, "which the library does not")


def test_a_file_cut_short_or_without_a_checksum_is_rebuilt(filled, caplog):
    path, before, query = filled
    file = index_file(path)
    file.write_bytes(file.read_bytes()[:-7])
    check_rebuilt(path, before, query, caplog, "no checksum")


def test_an_index_saved_and_loaded_is_the_same(tmp_path):
    index = VectorIndex(8)
    vectors = l2_normalize(np.random.default_rng(0).normal(size=(20, 8)))
    index.add(np.arange(20) + 5, vectors)
    index.save(str(tmp_path / "x.faiss"))
    loaded = VectorIndex.load(str(tmp_path / "x.faiss"), 8)
    np.testing.assert_array_equal(loaded.ids(), np.arange(20) + 5)
    np.testing.assert_array_equal(loaded.vectors(np.arange(20) + 5), vectors)
    data = bytearray((tmp_path / "x.faiss").read_bytes())
    data[len(data) // 2] ^= 1
    (tmp_path / "x.faiss").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        VectorIndex.load(str(tmp_path / "x.faiss"), 8)
