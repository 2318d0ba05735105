"""Damaged index and vector files are caught when read: an index file is built again from the vectors,
a damaged vector marks its item failed (the next index run reads the file again); nothing damaged is
ever searched or copied."""

import logging
import os

import numpy as np
import pytest

import bindsearch
from bindsearch.library.schema import STATUS_FAILED
from bindsearch.library.soundness import DAMAGED_STORED
from bindsearch.modality import Modality
from bindsearch.vectors import l2_normalize

N = 300
LIMIT = "100"  # exact search up to 100 vectors: the N image vectors get an approximate index, with its file


def add_random(lib, n=N, seed=0):
    rng = np.random.default_rng(seed)
    vectors = l2_normalize(rng.normal(size=(n, lib.dim)))
    with lib.writer() as writer:
        for i, v in enumerate(vectors):
            writer.put(f"/data/{seed}-{i}.png", Modality.IMAGE, 1, 1, f"h{seed}-{i}", v)
        writer.commit()
    return vectors


def results(lib, query, k=20):
    return [(h.id, round(h.score, 5)) for h in lib.search(query, targets=["image"], k=k, exact=True)]


@pytest.fixture
def filled(tmp_path, tiny_space, monkeypatch):
    """A library of N image vectors with an approximate index, the exact answers to a query, and the query."""
    monkeypatch.setenv("BINDSEARCH_EXACT_LIMIT", LIMIT)
    path = tmp_path / "lib"
    with bindsearch.open_library(path, tiny_space, create=True) as lib:
        vectors = add_random(lib)
        assert lib.vector_index(Modality.IMAGE).kind == "ivf-rabitq"
        query = vectors[3]
        before = results(lib, query)
    return path, before, query


def index_file(path):
    return path / "index" / "image.ivf"


def check_rebuilt(path, before, query, caplog, reason):
    with caplog.at_level(logging.WARNING, logger="bindsearch"):
        with bindsearch.open_library(path) as lib:
            assert results(lib, query) == before
            hits = lib.search(query, targets=["image"], k=20)
            assert [(h.id, round(h.score, 5)) for h in hits][:10] == before[:10]
    assert "building the image index" in caplog.text and reason in caplog.text
    with bindsearch.open_library(path) as lib, caplog.at_level(logging.WARNING, logger="bindsearch"):
        caplog.clear()
        assert results(lib, query) == before
        assert "building" not in caplog.text  # written back, sound


def test_index_bytes_flipped_are_caught(filled, caplog):
    path, before, query = filled
    data = bytearray(index_file(path).read_bytes())
    data[len(data) // 3] ^= 0x10
    index_file(path).write_bytes(bytes(data))
    check_rebuilt(path, before, query, caplog, "checksum")


def test_an_index_file_cut_short_is_caught(filled, caplog):
    path, before, query = filled
    index_file(path).write_bytes(index_file(path).read_bytes()[:-7])
    check_rebuilt(path, before, query, caplog, "its file is unusable")


def test_another_librarys_index_file_is_caught(filled, caplog, tmp_path, tiny_space):
    path, before, query = filled
    with bindsearch.open_library(tmp_path / "other", tiny_space, create=True) as other:
        add_random(other, seed=9)
    os.replace(index_file(tmp_path / "other"), index_file(path))
    check_rebuilt(path, before, query, caplog, "holds other vectors than the library")


def test_a_fifo_in_the_index_files_place_is_caught(filled, caplog):
    path, before, query = filled
    index_file(path).unlink()
    os.mkfifo(index_file(path))
    try:
        check_rebuilt(path, before, query, caplog, "its file")
    finally:
        if index_file(path).exists() and not index_file(path).is_file():
            index_file(path).unlink()


def _vector_file(path):
    return path / "vectors" / "image.f32"


@pytest.mark.parametrize("limit", ["100", "100000"])  # approximate, then exact
def test_a_damaged_vector_marks_its_item_failed_and_nothing_else(tmp_path, tiny_space, monkeypatch, caplog, limit):
    monkeypatch.setenv("BINDSEARCH_EXACT_LIMIT", limit)
    path = tmp_path / "lib"
    with bindsearch.open_library(path, tiny_space, create=True) as lib:
        vectors = add_random(lib)
        victim = lib.stored_item_vector("/data/0-10.png")[0][0]
    data = bytearray(_vector_file(path).read_bytes())
    row = 4096 + 10 * 4 * vectors.shape[1]
    data[row : row + 8] = np.full(2, 1e18, "<f4").tobytes()
    _vector_file(path).write_bytes(bytes(data))
    if index_file(path).exists():
        index_file(path).unlink()  # so that the build reads (and checks) every vector
    with caplog.at_level(logging.WARNING, logger="bindsearch"), bindsearch.open_library(path) as lib:
        hits = lib.search(vectors[10], targets=["image"], k=5, exact=True)
        assert victim not in [h.id for h in hits] and len(hits) == 5
        assert "damaged on disk" in caplog.text
        assert lib.search(vectors[11], targets=["image"], k=1)[0].path == "/data/0-11.png"
        [failed] = lib.info().failed
        assert (failed.path, failed.reason) == ("/data/0-10.png", DAMAGED_STORED)
        assert lib.counts()[Modality.IMAGE] == N - 1
    with bindsearch.open_library(path) as lib:
        item = next(i for i in lib.items_under(["/data"]) if i.path == "/data/0-10.png")
        assert item.status == STATUS_FAILED and item.mtime_ns == -1  # read again by the next run


def test_a_deleted_vector_file_fails_its_items_with_one_notice(tmp_path, tiny_space, caplog):
    path = tmp_path / "lib"
    with bindsearch.open_library(path, tiny_space, create=True) as lib:
        vectors = add_random(lib, n=20)
    _vector_file(path).unlink()
    with caplog.at_level(logging.WARNING, logger="bindsearch"), bindsearch.open_library(path) as lib:
        assert lib.search(vectors[0], targets=["image"], k=5) == []
        assert caplog.text.count("damaged on disk") == 1 and "20 items" in caplog.text
        assert len(lib.info().failed) == 20
