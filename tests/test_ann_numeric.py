"""The numeric steps the index engines share, each against a plain reference."""

import faiss
import numpy as np
import pytest

from bindsearch.ann.idsets import IdLookup, in_sorted, sorted_ids
from bindsearch.ann.selectors import Selection
from bindsearch.ann.tail import Tail
from bindsearch.ann.topk import exact_scores, exact_search, merge_top_k, spread, top_k


def reference_top_k(scores, ids, k):
    """Row by row, with Python's sort: the k best real (id >= 0) pairs, best first, padded with (-inf, -1)."""
    out_scores, out_ids = [], []
    for row_scores, row_ids in zip(scores, ids):
        pairs = sorted(((float(s), int(i)) for s, i in zip(row_scores, row_ids) if i >= 0), key=lambda p: -p[0])
        pairs = pairs[:k] + [(-np.inf, -1)] * (k - len(pairs[:k]))
        out_scores.append([p[0] for p in pairs])
        out_ids.append([p[1] for p in pairs])
    return np.array(out_scores, np.float32).reshape(len(scores), k), np.array(out_ids).reshape(len(scores), k)


@pytest.mark.parametrize("n,k", [(50, 10), (10, 10), (4, 10), (1, 1), (30, 29)])
def test_top_k_is_the_sorted_best_of_each_row(n, k):
    rng = np.random.default_rng(n)
    scores = rng.standard_normal((6, n)).astype(np.float32)  # distinct scores: one right order
    ids = rng.permutation(10 * n)[: 6 * n].reshape(6, n).astype(np.int64)
    ids[0, : n // 2] = -1  # empty slots never beat a real one, whatever their score
    got_scores, got_ids = top_k(scores, ids, k)
    want_scores, want_ids = reference_top_k(scores, ids, k)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_array_equal(got_scores, want_scores)


def test_top_k_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="same"):
        top_k(np.zeros((2, 3), np.float32), np.zeros((2, 4), np.int64), 2)


def test_merge_takes_the_best_of_both_lists():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 8)).astype(np.float32), rng.permutation(100)[:40].reshape(5, 8)
    b = rng.standard_normal((5, 3)).astype(np.float32), 100 + rng.permutation(100)[:15].reshape(5, 3)
    got = merge_top_k([a, b], 6)
    want = reference_top_k(np.concatenate([a[0], b[0]], 1), np.concatenate([a[1], b[1]], 1), 6)
    np.testing.assert_array_equal(got[1], want[1])


def test_exact_scores_are_the_inner_products_of_the_fetched_vectors():
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((40, 16)).astype(np.float32)
    queries = rng.standard_normal((3, 16)).astype(np.float32)
    candidates = np.array([[5, 7, -1, 5], [0, 39, 1, 2], [-1, -1, -1, 3]])
    asked = []

    def fetch(ids):
        asked.append(ids.copy())
        return vectors[ids]

    scores = exact_scores(queries, candidates, fetch)
    for row in range(3):
        for col in range(4):
            c = candidates[row, col]
            want = -np.inf if c < 0 else float(vectors[c] @ queries[row])
            assert scores[row, col] == pytest.approx(want, rel=1e-5)
    [ids] = asked  # one read, each id once, ascending
    np.testing.assert_array_equal(ids, [0, 1, 2, 3, 5, 7, 39])


def test_exact_search_over_blocks_equals_one_pass():
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((1000, 8)).astype(np.float32)
    queries = rng.standard_normal((4, 8)).astype(np.float32)
    ids = rng.permutation(1000)[:700]
    scores, got = exact_search(queries, ids, lambda i: vectors[i], 12, block=64)
    want = np.sort(ids)[np.argsort(-(queries @ vectors[np.sort(ids)].T), axis=1)[:, :12]]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ vectors.T, got, 1), rtol=1e-5)


def test_exact_search_pads_when_few_ids():
    vectors = np.eye(4, dtype=np.float32)
    scores, ids = exact_search(vectors[:1], np.array([2, 0]), lambda i: vectors[i], 5)
    assert ids.tolist() == [[0, 2, -1, -1, -1]]
    assert scores[0, 0] == 1.0 and np.isneginf(scores[0, 2:]).all()


def test_spread_is_even_and_covers_the_ends():
    assert spread(5, 10).tolist() == [0, 1, 2, 3, 4]
    assert spread(101, 3).tolist() == [0, 50, 100]


def test_in_sorted_and_sorted_ids():
    assert in_sorted(np.array([3, 4, 10, -1, 99]), np.array([1, 3, 10])).tolist() == [True, False, True, False,
                                                                                        False]
    assert not in_sorted(np.array([1]), np.zeros(0, np.int64)).any()
    assert sorted_ids([5, 1, 5, 3]).tolist() == [1, 3, 5]
    assert sorted_ids(np.array([1, 2, 9])).tolist() == [1, 2, 9]


@pytest.mark.parametrize("include", [np.array([3, 8, 1000]), np.array([2**40, 5]), None])
def test_selection_lets_through_exactly_include_less_exclude(include):
    # Small ids make a bitmap, a huge one a hash set: both must select the same ids.
    exclude = np.array([8, 7, 5])
    selection = Selection(include, exclude)
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(2))
    ids = np.array([1, 3, 5, 7, 8, 9, 1000, 2**40], dtype=np.int64)
    index.add_with_ids(np.ones((ids.size, 2), np.float32), ids)
    params = faiss.SearchParameters(sel=selection.selector)
    _, found = index.search(np.ones((1, 2), np.float32), ids.size, params=params)
    want = {int(i) for i in ids if (include is None or i in include) and i not in exclude}
    assert {int(i) for i in found[0] if i >= 0} == want


def test_selection_of_nothing_is_no_selector():
    assert Selection(None, None).selector is None
    assert Selection(None, np.zeros(0, np.int64)).selector is None


def test_tail_search_is_brute_force_over_what_it_holds():
    rng = np.random.default_rng(4)
    tail = Tail(8)
    vectors = rng.standard_normal((300, 8)).astype(np.float32)
    ids = np.arange(300, dtype=np.int64) * 7
    for start in range(0, 300, 50):  # grows past its first room
        tail.add(ids[start : start + 50], vectors[start : start + 50])
    tail.remove(ids[::3])
    kept = np.setdiff1d(np.arange(300), np.arange(0, 300, 3))
    allowed, excluded = np.sort(ids[kept][::2]), np.sort(ids[kept][:20])
    queries = rng.standard_normal((3, 8)).astype(np.float32)
    scores, got = tail.search(queries, 5, allowed, excluded)
    passing = [i for i in kept if ids[i] in set(allowed) - set(excluded)]
    reference = np.array(passing)[np.argsort(-(queries @ vectors[passing].T), axis=1)[:, :5]]
    np.testing.assert_array_equal(got, ids[reference])
    np.testing.assert_allclose(scores, np.einsum("mkd,md->mk", vectors[reference], queries), rtol=1e-5)
    assert tail.size == kept.size


@pytest.mark.parametrize("ids", [np.array([0, 3, 4, 90]), np.array([5, 2**40, 2**41])])
def test_id_lookup_gives_positions_dense_or_sparse(ids):
    lookup = IdLookup(ids)
    values = np.array([ids[2], -5, 7, ids[0], 2**45, ids[3] if ids.size > 3 else ids[1]])
    want = [2, -1, -1, 0, -1, 3 if ids.size > 3 else 1]
    assert lookup.positions(values).tolist() == want
    assert lookup.contains(np.sort(ids)).all() and lookup.positions(np.zeros(0, np.int64)).size == 0
