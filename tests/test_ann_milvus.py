"""The Milvus engine on a real Milvus Lite file returns what brute force returns, keeps ids with their vectors,
and says in one line what is wrong with a URI, a server or a collection.

Milvus Lite serves one folder per process: every test shares the module's file, each in collections of its own.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from ann_data import brute_force, clustered

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from bindsearch.ann import MilvusIndex, load_index
from bindsearch.ann.milvus import MilvusTarget, parse_uri
from bindsearch.errors import LibraryError, UsageError

N, DIM = 3000, 64


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    return f"milvus://{tmp_path_factory.mktemp('milvus') / 'vectors.db'}"


@pytest.fixture(scope="module")
def data(uri):
    vectors, queries = clustered(N, DIM, queries=20)
    ids = np.arange(N, dtype=np.int64) * 5 + 11  # stable ids, not positions
    index = MilvusIndex(uri, "shared", DIM, index_type="FLAT")
    index.add(ids, vectors)
    return index, ids, vectors, queries


def exact(vectors, ids, queries, found):
    """The exact inner products of each query with the ids found (-1: -inf)."""
    rows = np.searchsorted(ids, np.maximum(found, 0))
    scores = np.einsum("mkd,md->mk", vectors[rows], queries)
    return np.where(found >= 0, scores, -np.inf)


def test_uris_name_lite_files_and_servers():
    assert parse_uri("milvus:///data/lib/v.db") == MilvusTarget("lite", "/data/lib/v.db", "milvus:///data/lib/v.db")
    assert parse_uri("milvus://db.example:19531").address == "http://db.example:19531"
    assert parse_uri("milvus://db.example").address == "http://db.example:19530"
    assert parse_uri("https://cloud.example:443").address == "https://cloud.example:443"
    assert parse_uri("http://[::1]:19530").address == "http://[::1]:19530"
    for bad in ("milvus://relative.db", "milvus:///data/lib/", "milvus:///v.txt", "ftp://host", "/data/v.db",
                "milvus://host:99999", "http://host:19530/path"):
        with pytest.raises(UsageError) as caught:
            parse_uri(bad)
        assert bad in str(caught.value) and "\n" not in str(caught.value)


def test_milvus_is_brute_force_with_exact_scores(data):
    index, ids, vectors, queries = data
    assert index.size == N and np.array_equal(index.ids(), ids)
    scores, found = index.search(queries, 10)
    np.testing.assert_array_equal(found, brute_force(vectors, ids, queries, 10))
    np.testing.assert_allclose(scores, exact(vectors, ids, queries, found), rtol=1e-6, atol=1e-6)
    assert scores.dtype == np.float32 and found.dtype == np.int64


@pytest.mark.parametrize("path", ["fetched", "expression"])
def test_allowed_and_excluded_are_exact(data, path, monkeypatch):
    index, ids, vectors, queries = data
    monkeypatch.setattr(index, "fetch_limit", 10**9 if path == "fetched" else 0)
    allowed, excluded = ids[::7], ids[::14]
    scores, found = index.search(queries, 10, allowed=allowed, excluded=excluded)
    np.testing.assert_array_equal(found, brute_force(vectors, ids, queries, 10, allowed, excluded))
    np.testing.assert_allclose(scores, exact(vectors, ids, queries, found), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("path", ["over-fetched", "expression"])
def test_excluded_ids_never_cut_k_short(data, path, monkeypatch):
    index, ids, vectors, queries = data
    monkeypatch.setattr(index, "overfetch_limit", 10**9 if path == "over-fetched" else 0)
    # The queries' own best 30 each are excluded: a search that asked for 10 and dropped them would return none.
    excluded = np.unique(brute_force(vectors, ids, queries, 30))
    _, found = index.search(queries, 10, excluded=excluded)
    assert (found >= 0).all()
    np.testing.assert_array_equal(found, brute_force(vectors, ids, queries, 10, excluded=excluded))


def test_k_is_capped_by_what_is_live_and_allowed(data, monkeypatch):
    index, ids, _, queries = data
    for limit in (10**9, 0):
        monkeypatch.setattr(index, "fetch_limit", limit)
        _, found = index.search(queries[:2], 10, allowed=np.array([ids[3], ids[9], 999_999]))
        assert found.shape == (2, 2) and set(found[0]) == {ids[3], ids[9]}
        # Allowed but excluded: the slot is there, with nothing in it.
        scores, found = index.search(queries[:2], 10, allowed=np.array([ids[3], ids[9]]), excluded=ids[3:4])
        assert found.tolist() == [[ids[9], -1]] * 2 and np.isneginf(scores[:, 1]).all()
        assert index.search(queries[:2], 10, allowed=np.array([999_999]))[1].shape == (2, 0)
    assert index.search(queries[:2], 0)[1].shape == (2, 0)
    assert index.search(queries[:1], N + 50)[1].shape == (1, N)


def test_an_id_added_again_has_only_its_new_vector(uri):
    index = MilvusIndex(uri, "replace", 4, index_type="FLAT")
    index.add(np.array([1, 2]), np.eye(4, dtype=np.float32)[:2])
    index.add(np.array([1]), np.eye(4, dtype=np.float32)[2:3])
    assert index.size == 2
    scores, found = index.search(np.array([[1, 0.5, 0, 0]], np.float32), 5)
    assert found.tolist() == [[2, 1]] and scores.tolist() == [[0.5, 0.0]]  # id 1 no longer points along axis 0
    live, vectors = index.vectors(np.array([1, 77]))
    assert live.tolist() == [1] and np.array_equal(vectors, np.eye(4, dtype=np.float32)[2:3])
    index.remove(np.array([2, 77]))
    assert index.ids().tolist() == [1] and index.size == 1
    assert index.search(np.array([[1, 0.5, 0, 0]], np.float32), 5)[1].tolist() == [[1]]


def test_adds_go_in_bounded_requests(uri):
    index = MilvusIndex(uri, "chunks", 1024, index_type="FLAT")
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((4100, 1024)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index.add(np.arange(4100) + 10**12, vectors)  # over one request's 16 MiB; ids past 32 bits
    assert index.size == 4100
    _, found = index.search(vectors[[7, 4099]], 1)
    assert found.ravel().tolist() == [10**12 + 7, 10**12 + 4099]


def test_save_load_and_reopen_see_the_same_data(data, uri, tmp_path):
    index, ids, _, queries = data
    path = str(tmp_path / "image.milvus")
    index.save(path)
    again = load_index_milvus(path)
    assert isinstance(again, MilvusIndex) and again.index_type == "FLAT" and again.stats().size == N
    for got, want in zip(again.search(queries, 10), index.search(queries, 10)):
        np.testing.assert_array_equal(got, want)
    reopened = MilvusIndex(uri, "shared", DIM)  # the collection's own index type wins over the default
    assert reopened.index_type == "FLAT" and np.array_equal(reopened.ids(), ids)
    with pytest.raises(ValueError, match="dimension 64, not 32"):
        MilvusIndex.load(path, 32)
    with open(path, "r+b") as f:
        f.seek(5)
        f.write(b"X")
    with pytest.raises(ValueError, match="damaged"):
        MilvusIndex.load(path, DIM)


def load_index_milvus(path):
    """The descriptor is an index file like the others: its trailer names the engine."""
    with pytest.raises(ValueError, match="not an index of a known engine"):
        load_index(path, DIM, None)  # choose.py does not know Milvus yet: the descriptor is refused, not misread
    return MilvusIndex.load(path, DIM)


def test_a_collection_of_another_dimension_is_refused(data, uri):
    with pytest.raises(LibraryError) as caught:
        MilvusIndex(uri, "shared", DIM * 2)
    assert str(caught.value) == f"{uri}: the collection shared holds vectors of dimension {DIM}, not {DIM * 2}"


def test_unreachable_milvus_and_bad_places_are_one_line_errors(tmp_path):
    with pytest.raises(LibraryError) as caught:
        MilvusIndex("http://127.0.0.1:9", "c", 8, timeout=2)
    message = str(caught.value)
    assert message.startswith("http://127.0.0.1:9: cannot reach Milvus") and "\n" not in message
    with pytest.raises(LibraryError, match="does not exist"):
        MilvusIndex(f"milvus://{tmp_path}/missing/v.db", "c", 8)
    with pytest.raises(UsageError, match="Milvus Lite offers"):
        MilvusIndex(f"milvus://{tmp_path}/v.db", "c", 8, index_type="HNSW_PQ")


def test_import_bindsearch_does_not_import_pymilvus():
    code = "import sys, bindsearch, bindsearch.ann; bindsearch.ann.MilvusIndex; print('pymilvus' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.stdout.strip() == "False"


def test_a_library_fetches_larger_allowed_sets_as_its_collection_grows():
    from bindsearch.library.milvus_vectors import fetch_limit

    assert fetch_limit(50_000, 256) == 256  # (measured: filtering wins above a few hundred ids at 50k)
    assert fetch_limit(1_000_000, 256) == 2500  # (measured: 1 000 ids fetched in 193 ms, filtered in 482 ms)
    assert fetch_limit(100_000_000, 256) == 8192
    assert fetch_limit(0, 64) == 64
