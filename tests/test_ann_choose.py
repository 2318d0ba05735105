"""Which engine for how many vectors, with what parameters, and loading whichever engine wrote a file."""

import numpy as np
import pytest
from ann_data import ArrayStore, clustered

import bindsearch.ann.choose as choose
from bindsearch.ann import (
    ApproximateIndex,
    FlatIndex,
    IvfParams,
    build_index,
    engine_for,
    ivf_params,
    load_index,
    should_rebuild,
)
from bindsearch.ann.defaults import exact_limit


def chunks_of(ids, vectors, size=1000):
    return lambda: ((ids[s : s + size], vectors[s : s + size]) for s in range(0, ids.size, size))


def test_exact_below_the_limit_approximate_above():
    limit = exact_limit(1024)
    assert 5_000 <= limit <= 20_000  # a few ms of brute force at 1024 dims
    assert engine_for(limit, 1024) == "flat" and engine_for(limit + 1, 1024) == "ivf-rabitq"
    assert exact_limit(128) == 8 * limit  # the limit is in bytes scanned per query
    assert engine_for(1_000_000, 1024) == "ivf-rabitq"


@pytest.mark.parametrize("n", [500, 20_000, 100_000, 1_000_000, 10_000_000])
def test_parameters_grow_with_n(n):
    params = ivf_params(n)
    assert params.nlist <= n**0.5 + 1 and n / params.nlist >= 39  # never fewer than 39 training vectors a list
    assert params.nlist >= min(n**0.5, n / 39) - 1
    assert min(32, params.nlist) <= params.nprobe <= params.nlist and params.nprobe >= params.nlist / 32
    assert params.train_size == min(n, 40 * params.nlist) and params.rerank >= 10
    assert IvfParams.from_dict(params.to_dict()) == params


def test_parameters_that_cannot_work_are_refused():
    with pytest.raises(ValueError, match="unusable"):
        IvfParams.from_dict({"nlist": 10, "nprobe": 11, "rerank": 5, "qb": 4, "train_size": 100})


def test_build_index_chooses_by_size_and_load_index_by_file(tmp_path):
    vectors, queries = clustered(3000, 1024, queries=5)
    ids = np.arange(3000, dtype=np.int64) + 1
    store = ArrayStore(ids, vectors)
    flat = build_index(ids, chunks_of(ids, vectors), 1024, store.fetch)
    approximate = build_index(ids, chunks_of(ids, vectors), 1024, store.fetch, kind="ivf-rabitq",
                              params=IvfParams(nlist=30, nprobe=30, rerank=50, qb=4, train_size=1200))
    assert isinstance(flat, FlatIndex) and isinstance(approximate, ApproximateIndex)
    for index in (flat, approximate):
        path = str(tmp_path / index.kind)
        index.save(path)
        again = load_index(path, 1024, store.fetch)
        assert type(again) is type(index)
        np.testing.assert_array_equal(again.search(queries, 10)[1], index.search(queries, 10)[1])
    # Each engine refuses the other's file in words.
    with pytest.raises(ValueError, match="not an exact index"):
        FlatIndex.load(str(tmp_path / "ivf-rabitq"), 1024)
    with pytest.raises(ValueError, match="another index engine"):
        ApproximateIndex.load(str(tmp_path / "flat"), 1024, store.fetch)


def test_an_unknown_kind_or_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown index kind"):
        build_index(np.arange(3), lambda: iter(()), 8, lambda i: i, kind="hnsw")
    path = tmp_path / "x.index"
    path.write_bytes(b"something else entirely, long enough to hold a trailer")
    with pytest.raises(ValueError, match="no checksum"):
        load_index(str(path), 8, None)


def test_build_index_refuses_chunks_that_miss_ids():
    vectors, _ = clustered(100, 16, queries=1)
    ids = np.arange(100, dtype=np.int64)
    with pytest.raises(ValueError, match="the chunks gave 50 vectors"):
        build_index(ids, chunks_of(ids[:50], vectors[:50]), 16, lambda i: vectors[i])


def test_should_rebuild_across_the_limit(monkeypatch):
    monkeypatch.setattr(choose, "exact_limit", lambda dim: 1000)
    vectors, _ = clustered(3000, 32, queries=1)
    ids = np.arange(3000, dtype=np.int64)
    flat = FlatIndex(32)
    flat.add(ids[:1000], vectors[:1000])
    assert not should_rebuild(flat)
    flat.add(ids[1000:1001], vectors[1000:1001])
    assert should_rebuild(flat)  # grown past the limit: time for the approximate engine
    store = ArrayStore(ids, vectors)
    index = ApproximateIndex.build(ids, chunks_of(ids, vectors), 32, store.fetch)
    assert not should_rebuild(index)
    index.remove(ids[:200])
    assert not should_rebuild(index)
    small = ApproximateIndex.build(ids[:450], chunks_of(ids[:450], vectors[:450]), 32, store.fetch)
    assert should_rebuild(small)  # below half the limit: back to the exact engine
