"""The exact engine returns what brute force returns, keeps its files safe, and reads the library's old files."""

import numpy as np
import pytest
from ann_data import ArrayStore, brute_force, clustered

from bindsearch.ann import FlatIndex, load_index, search_ids

N, DIM = 3000, 64


@pytest.fixture(scope="module")
def data():
    vectors, queries = clustered(N, DIM, queries=20)
    ids = np.arange(N, dtype=np.int64) * 5 + 11  # stable ids, not positions
    index = FlatIndex(DIM)
    index.add(ids, vectors)
    return index, ids, vectors, queries


def test_flat_is_brute_force(data):
    index, ids, vectors, queries = data
    scores, found = index.search(queries, 10)
    np.testing.assert_array_equal(found, brute_force(vectors, ids, queries, 10))
    rows = (found - 11) // 5
    np.testing.assert_allclose(scores, np.einsum("mkd,md->mk", vectors[rows], queries), rtol=1e-5, atol=1e-6)


def test_flat_filters_are_exact(data):
    index, ids, vectors, queries = data
    allowed, excluded = ids[::7], ids[::14]
    _, found = index.search(queries, 10, allowed=allowed, excluded=excluded)
    np.testing.assert_array_equal(found, brute_force(vectors, ids, queries, 10, allowed, excluded))


def test_flat_k_is_capped_by_what_is_allowed(data):
    index, ids, _, queries = data
    _, found = index.search(queries[:2], 10, allowed=np.array([ids[3], ids[9], 999_999]))
    assert found.shape == (2, 2) and set(found[0]) == {ids[3], ids[9]}
    assert index.search(queries[:2], 0)[1].shape == (2, 0)


def test_an_id_added_again_has_only_its_new_vector():
    index = FlatIndex(4)
    index.add(np.array([1, 2]), np.eye(4, dtype=np.float32)[:2])
    index.add(np.array([1]), np.eye(4, dtype=np.float32)[2:3])
    assert index.size == 2
    scores, found = index.search(np.array([[1, 0.5, 0, 0]], np.float32), 5)
    assert found.tolist() == [[2, 1]] and scores.tolist() == [[0.5, 0.0]]  # id 1 no longer points along axis 0
    np.testing.assert_array_equal(index.vectors(np.array([1])), np.eye(4, dtype=np.float32)[2:3])
    index.remove(np.array([2, 77]))
    assert sorted(index.ids().tolist()) == [1]


def test_adding_in_chunks_keeps_every_vector_even_identical_ones():
    # Each add first removes the ids it brings: the selector doing so must not outlive the arrays it reads
    # (it once did, and a few ids of earlier chunks went missing at random).
    index = FlatIndex(32)
    vectors = np.full((4096, 32), 1 / np.sqrt(32), np.float32)
    for begin in range(0, 40_960, 4096):
        index.add(np.arange(begin, begin + 4096), vectors)
    assert index.size == 40_960
    assert np.array_equal(index.ids(), np.arange(40_960))


def test_bad_shapes_are_refused_in_words():
    index = FlatIndex(4)
    with pytest.raises(ValueError, match=r"shape \(2, 4\)"):
        index.add(np.array([1, 2]), np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="more than once"):
        index.add(np.array([1, 1]), np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="queries must have shape"):
        index.search(np.zeros(4, np.float32), 3)


def test_save_and_load_give_the_same_results(data, tmp_path):
    index, _, _, queries = data
    path = str(tmp_path / "flat.index")
    index.save(path)
    again = load_index(path, DIM, None)
    assert isinstance(again, FlatIndex) and again.stats().expected_recall == 1.0
    for got, want in zip(again.search(queries, 10), index.search(queries, 10)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("damage", ["flip", "cut", "empty", "wrong dim", "directory"])
def test_a_damaged_file_is_refused(data, tmp_path, damage):
    index = data[0]
    path = tmp_path / "flat.index"
    index.save(str(path))
    raw = bytearray(path.read_bytes())
    dim = DIM
    if damage == "flip":
        raw[len(raw) // 2] ^= 0x40
    elif damage == "cut":
        raw = raw[: len(raw) - 100]
    elif damage == "empty":
        raw = bytearray()
    elif damage == "wrong dim":
        dim = DIM * 2
    if damage == "directory":
        path.unlink()
        path.mkdir()
    else:
        path.write_bytes(bytes(raw))
    with pytest.raises(ValueError) as caught:
        FlatIndex.load(str(path), dim)
    assert "\n" not in str(caught.value)


def test_search_ids_is_exact_over_those_ids_only(data):
    _, ids, vectors, queries = data
    store = ArrayStore(ids, vectors)
    chosen, excluded = ids[100:900:3], ids[100:200]
    _, found = search_ids(queries, chosen, store.fetch, 10, excluded=excluded)
    np.testing.assert_array_equal(found, brute_force(vectors, ids, queries, 10, chosen, excluded))
    assert store.largest_fetch <= chosen.size
    assert search_ids(queries, np.zeros(0, np.int64), store.fetch, 10)[1].shape == (20, 0)
