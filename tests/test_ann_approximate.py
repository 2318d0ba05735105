"""The approximate engine: recall against brute force, changes seen at once, filters that keep their promise,
files that round-trip and refuse damage."""

import numpy as np
import pytest
from ann_data import ArrayStore, brute_force, clustered, recall_at_k

from bindsearch.ann import ApproximateIndex, IvfParams, files, ivf_params, load_index
from bindsearch.ann.approximate import MARKER

N, DIM, CHUNK = 30_000, 128, 4000


def chunked(ids, vectors, chunk=CHUNK):
    return lambda: ((ids[s : s + chunk], vectors[s : s + chunk]) for s in range(0, ids.size, chunk))


def build(ids, vectors, store, params=None):
    return ApproximateIndex.build(ids, chunked(ids, vectors), vectors.shape[1], store.fetch, params)


@pytest.fixture(scope="module")
def data():
    vectors, queries = clustered(N, DIM)
    ids = np.arange(N, dtype=np.int64) * 3 + 100  # stable ids, not positions
    return ids, vectors, queries


@pytest.fixture(scope="module")
def built(data):
    ids, vectors, _ = data
    store = ArrayStore(ids, vectors)
    return build(ids, vectors, store), store


@pytest.fixture
def fresh(data):
    """An index of its own, for a test that changes it."""
    ids, vectors, _ = data
    store = ArrayStore(ids, vectors)
    return build(ids, vectors, store), store


def test_recall_at_10_against_brute_force(data, built):
    ids, vectors, queries = data
    index, _ = built
    scores, found = index.search(queries, 10)
    truth = brute_force(vectors, ids, queries, 10)
    assert recall_at_k(found, truth) >= 0.95
    assert index.stats().expected_recall >= 0.95  # the build's own measure agrees
    rows = (found - 100) // 3
    np.testing.assert_allclose(scores, np.einsum("mkd,md->mk", vectors[rows], queries), rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_recall_at_1024_dims():
    vectors, queries = clustered(12_000, 1024, queries=40, seed=1)
    ids = np.arange(vectors.shape[0], dtype=np.int64)
    index = build(ids, vectors, ArrayStore(ids, vectors))
    _, found = index.search(queries, 10)
    assert recall_at_k(found, brute_force(vectors, ids, queries, 10)) >= 0.95


def test_vectors_without_structure_get_a_wider_search_that_reaches_the_recall():
    # Uniform on the sphere: the default lists and candidates find few true neighbours; the build measures
    # that on its probes and searches wider until they reach the target.
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(3000, 256)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(3000, 40, replace=False)] + 0.01 * rng.normal(size=(40, 256)).astype(np.float32)
    ids = np.arange(3000, dtype=np.int64)
    defaults = ivf_params(3000, 256)
    narrow = build(ids, vectors, ArrayStore(ids, vectors), IvfParams(**{**defaults.to_dict(), "nprobe": 2}))
    index = build(ids, vectors, ArrayStore(ids, vectors))
    assert (index.params.nprobe, index.params.rerank) > (defaults.nprobe, defaults.rerank)
    truth = brute_force(vectors, ids, queries, 10)
    assert recall_at_k(index.search(queries, 10)[1], truth) >= 0.95 and index.expected_recall >= 0.95
    assert narrow.params.nprobe > 2 and narrow.expected_recall >= 0.95  # (given parameters widen too)
    structured, _ = clustered(3000, 256, seed=4)
    assert build(ids, structured, ArrayStore(ids, structured)).params == defaults  # these keep the defaults


def test_the_build_streams(data):
    ids, vectors, _ = data
    store = ArrayStore(ids, vectors)
    calls = []

    def chunks():
        calls.append(1)
        return chunked(ids, vectors)()

    index = ApproximateIndex.build(ids, chunks, DIM, store.fetch)
    params = ivf_params(N)
    assert calls == [1] and index.size == N  # one pass over the chunks
    # Never every vector at once: the training sample, or the candidates of a block of 16 queries re-ranked.
    assert store.largest_fetch <= max(params.train_size, 16 * params.rerank) < N / 4
    assert index.stats().built_at is not None and index.stats().tail == 0


def test_chunks_that_do_not_hold_the_ids_are_refused(data):
    ids, vectors, _ = data
    store = ArrayStore(ids, vectors)
    with pytest.raises(ValueError, match="the chunks gave"):
        ApproximateIndex.build(ids, chunked(ids[:-10], vectors[:-10]), DIM, store.fetch)


def test_added_vectors_are_found_at_once(data, fresh):
    _, _, queries = data
    index, store = fresh
    new_ids = np.arange(5) + 10**9
    new_vectors = queries[:5]  # each query's own vector: its best hit, whatever the codes say
    store.put(new_ids, new_vectors)
    index.add(new_ids, new_vectors)
    scores, found = index.search(queries[:5], 10)
    assert found[:, 0].tolist() == new_ids.tolist()
    np.testing.assert_allclose(scores[:, 0], 1.0, rtol=1e-5)
    assert index.size == N + 5 and index.stats().tail == 5


def test_removed_ids_are_never_returned(data, fresh):
    ids, _, queries = data
    index, _ = fresh
    _, before = index.search(queries, 10)
    gone = np.unique(before[:, :5])  # the best hits of every query
    index.remove(gone)
    _, after = index.search(queries, 10)
    assert not np.isin(after, gone).any()
    assert (after >= 0).all()  # the others fill their places
    assert index.size == N - gone.size and index.stats().removed == gone.size
    live = np.setdiff1d(ids, gone)
    assert np.array_equal(index.ids(), live)


def test_an_id_removed_then_added_again_is_found_with_its_new_vector_only(data, fresh):
    _, _, queries = data
    index, store = fresh
    _, before = index.search(queries[:1], 1)
    moved = before[0, 0]
    index.remove(np.array([moved]))
    store.put(np.array([moved]), queries[1:2])  # re-embedded: it now sits on the second query
    index.add(np.array([moved]), queries[1:2])
    scores, found = index.search(queries[:2], 10)
    assert moved not in found[0]  # not at its old place
    assert found[1, 0] == moved and scores[1, 0] == pytest.approx(1.0, rel=1e-5)
    assert (found[1] == moved).sum() == 1
    # A built id given a new vector without a removal first: the same.
    other = index.search(queries[2:3], 1)[1][0, 0]
    store.put(np.array([other]), queries[3:4])
    index.add(np.array([other]), queries[3:4])
    _, found = index.search(queries[2:4], 10)
    assert other not in found[0] and found[1, 0] == other


@pytest.mark.parametrize("share", [0.002, 0.02, 0.3, 0.9])
def test_filters_return_k_of_the_allowed(data, built, share):
    # 0.002 and 0.02 take the exact path or a widened search; 0.3 and 0.9 the id selector.
    ids, vectors, queries = data
    index, _ = built
    rng = np.random.default_rng(int(share * 1000))
    allowed = rng.choice(ids, size=int(share * N), replace=False)
    _, found = index.search(queries, 10, allowed=allowed)
    assert found.shape == (queries.shape[0], 10) and (found >= 0).all()
    assert np.isin(found, allowed).all()
    truth = brute_force(vectors, ids, queries, 10, allowed=allowed)
    assert recall_at_k(found, truth) >= 0.95


def test_a_filter_of_few_ids_returns_all_of_them(data, built):
    ids, _, queries = data
    index, _ = built
    allowed = ids[[5, 9000, 29_999]]
    _, found = index.search(queries[:3], 10, allowed=np.concatenate([allowed, [7]]))  # 7 is no id of the index
    assert found.shape == (3, 3) and all(set(row) == set(allowed) for row in found)


def test_a_filter_unlike_the_query_finds_the_best_it_allows(data, built):
    # A tag that other content carries: the allowed ids sit around another query, far from this one, so the
    # lists nearest this query hold few of them.
    ids, vectors, queries = data
    index, _ = built
    hits = []
    for q in range(20):
        region = ids[np.argsort(-(vectors @ queries[q + 20]))[: N // 5]]
        _, found = index.search(queries[q : q + 1], 10, allowed=region)
        assert (found >= 0).all() and np.isin(found, region).all()
        hits.append(recall_at_k(found, brute_force(vectors, ids, queries[q : q + 1], 10, allowed=region)))
    assert np.mean(hits) >= 0.9


def test_a_filter_of_the_farthest_half_still_returns_k(data, built):
    # Adversarial: the allowed half is what is least like the query, so the lists it probes first hold none.
    ids, vectors, queries = data
    index, _ = built
    far = ids[np.argsort(vectors @ queries[0])[: N // 2]]
    _, found = index.search(queries[:1], 10, allowed=far)
    assert found.shape == (1, 10) and (found >= 0).all() and np.isin(found, far).all()


def test_excluded_ids_are_never_returned(data, built):
    ids, _, queries = data
    index, _ = built
    _, before = index.search(queries, 20)
    excluded = np.unique(before[:, ::2])
    _, found = index.search(queries, 10, excluded=excluded)
    assert not np.isin(found, excluded).any() and (found >= 0).all()
    _, found = index.search(queries, 10, allowed=ids[::2], excluded=excluded)
    assert not np.isin(found, excluded).any() and np.isin(found, ids[::2]).all()
    _, found = index.search(queries, 10, allowed=ids[:60], excluded=ids[:55])  # a selective filter: exact
    assert found.shape == (queries.shape[0], 10) and all(set(row) == set(ids[55:60]) | {-1} for row in found)


def test_save_and_load_give_identical_results(data, fresh, tmp_path):
    _, _, queries = data
    index, store = fresh
    index.remove(index.ids()[:50])
    index.add(np.array([10**9]), queries[:1])
    store.put(np.array([10**9]), queries[:1])
    path = str(tmp_path / "image.index")
    index.save(path)
    again = load_index(path, DIM, store.fetch)
    assert isinstance(again, ApproximateIndex) and again.stats() == index.stats()
    for kwargs in ({}, {"allowed": index.ids()[::3]}, {"excluded": index.ids()[:500]}):
        for got, want in zip(again.search(queries, 10, **kwargs), index.search(queries, 10, **kwargs)):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("damage", ["flip codes", "flip directory", "cut", "trailer only", "wrong dim"])
def test_a_damaged_file_is_refused(fresh, tmp_path, damage):
    index, store = fresh
    path = tmp_path / "image.index"
    index.save(str(path))
    raw, dim = bytearray(path.read_bytes()), DIM
    if damage == "flip codes":
        raw[len(raw) // 3] ^= 0x01
    elif damage == "flip directory":
        raw[-40] ^= 0x20
    elif damage == "cut":
        raw = raw[: len(raw) * 2 // 3]
    elif damage == "trailer only":
        raw = raw[-20:]
    else:
        dim = DIM + 1
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError) as caught:
        load_index(str(path), dim, store.fetch)
    assert "\n" not in str(caught.value)


def test_needs_rebuild_once_the_tail_or_the_tombstones_grow(data, fresh):
    ids, _, _ = data
    index, _ = fresh
    assert not index.needs_rebuild()
    index.remove(ids[: N // 20])
    assert not index.needs_rebuild()
    index.remove(ids[: N // 5])  # a fifth of the build removed
    assert index.needs_rebuild()


def test_needs_rebuild_once_the_tail_passes_its_share(data):
    ids, vectors, _ = data
    small = 4000
    store = ArrayStore(ids, vectors)
    index = build(ids[:small], vectors[:small], store, IvfParams(nlist=40, nprobe=8, rerank=50, qb=4,
                                                                 train_size=2000))
    index.add(ids[small : small + 300], vectors[small : small + 300])
    assert not index.needs_rebuild()
    index.add(ids[small + 300 : small + 500], vectors[small + 300 : small + 500])
    assert index.needs_rebuild() and index.stats().tail == 500


def test_an_empty_build_is_refused():
    with pytest.raises(ValueError, match="needs vectors"):
        ApproximateIndex.build(np.zeros(0, np.int64), lambda: iter(()), 8, lambda i: np.zeros((i.size, 8)))


def test_a_file_whose_checksum_holds_but_whose_parts_do_not_is_refused(fresh, tmp_path):
    # What a checksum cannot catch: a file written whole but wrong (an older format, a missing part).
    index, store = fresh
    path = str(tmp_path / "image.index")
    meta = {"format": 1, "kind": "ivf-rabitq", "dim": DIM, "params": index.params.to_dict(), "built_at": None,
            "expected_recall": None}

    def write(sections):
        def body(raw_write):
            writer = files.SectionWriter(raw_write)
            for name, array in sections.items():
                writer.array(name, array)
            writer.finish(meta)

        files.write_atomic(path, MARKER, body)

    write({"built_ids": index.built_ids})
    with pytest.raises(ValueError, match="no 'built' section"):
        ApproximateIndex.load(path, DIM, store.fetch)
    meta["format"] = 99
    write({})
    with pytest.raises(ValueError, match="known format"):
        ApproximateIndex.load(path, DIM, store.fetch)
