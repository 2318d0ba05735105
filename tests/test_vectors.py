"""Numeric helpers against simple references."""

import numpy as np
import pytest

from bindsearch.vectors import combine, from_blobs, l2_normalize, to_blob


def test_l2_normalize_rows_have_unit_norm_and_keep_direction():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7)).astype(np.float64) * 13
    y = l2_normalize(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(y, x / np.linalg.norm(x, axis=1, keepdims=True), rtol=1e-5)


def test_l2_normalize_keeps_zero_rows_finite():
    y = l2_normalize(np.zeros((2, 3)))
    assert np.all(y == 0)


def test_l2_normalize_rejects_other_ranks():
    with pytest.raises(ValueError, match="shape"):
        l2_normalize(np.zeros((2, 3, 4)))


def test_combine_equals_normalised_weighted_sum_of_normalised_terms():
    rng = np.random.default_rng(1)
    a, b, c = rng.normal(size=(3, 16)) * np.array([[20.0], [1.0], [5.0]])
    weights = [2.0, 1.0, -0.5]
    expected = sum(w * v / np.linalg.norm(v) for w, v in zip(weights, [a, b, c]))
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(combine([a, b, c], weights), expected, rtol=1e-5, atol=1e-6)


def test_combine_single_term_is_its_direction():
    v = np.array([3.0, 4.0])
    np.testing.assert_allclose(combine([v], [5.0]), [0.6, 0.8], rtol=1e-6)


@pytest.mark.parametrize(
    "vectors, weights, message",
    [
        ([], [], "at least one"),
        ([np.ones(3)], [1.0, 2.0], "weights"),
        ([np.ones(3), np.ones(4)], [1.0, 1.0], "different sizes"),
        ([np.ones(3), np.ones(3)], [1.0, -1.0], "cancel"),
    ],
)
def test_combine_rejects_bad_input(vectors, weights, message):
    with pytest.raises(ValueError, match=message):
        combine(vectors, weights)


def test_blob_round_trip():
    rng = np.random.default_rng(2)
    vs = rng.normal(size=(4, 8)).astype(np.float32)
    back = from_blobs([to_blob(v, 8) for v in vs], 8)
    np.testing.assert_array_equal(back, vs)
    with pytest.raises(ValueError):
        to_blob(vs[0], 9)
