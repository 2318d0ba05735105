"""Calibrated scores and de-duplication, against simple references."""

from __future__ import annotations

import numpy as np
import pytest

from bindsearch.search.calibration import ScoreScale, rank_key, score_scale
from bindsearch.search.dedup import keep_distinct
from bindsearch.vectors import evenly_spaced, l2_normalize


def test_score_scale_is_the_mean_and_spread_of_the_query_on_the_reference():
    rng = np.random.default_rng(0)
    reference = l2_normalize(rng.normal(size=(200, 16)))
    query = l2_normalize(rng.normal(size=16))
    scale = score_scale(query, reference)
    scores = [float(np.dot(r, query)) for r in reference]
    assert scale.mean == pytest.approx(np.mean(scores), abs=1e-6)
    assert scale.std == pytest.approx(np.std(scores), abs=1e-6)
    assert scale.calibrate(scale.mean + 2 * scale.std) == pytest.approx(2.0)


def test_degenerate_references_leave_scores_raw():
    query = l2_normalize(np.ones(4))
    assert score_scale(query, np.zeros((0, 4))) == ScoreScale()
    assert score_scale(query, np.ones((1, 4)) / 2) == ScoreScale()
    assert score_scale(query, np.tile(np.eye(4)[0], (5, 1))) == ScoreScale()  # all alike: no spread
    with pytest.raises(ValueError):
        score_scale(query, np.zeros((3, 5)))


def test_rank_key_puts_exact_matches_first_then_calibrated_score():
    keys = {"exact": rank_key(1.0, 2.0), "strong": rank_key(0.4, 9.0), "weak": rank_key(0.9, 1.0)}
    assert sorted(keys, key=keys.get) == ["exact", "strong", "weak"]


def test_evenly_spaced_sample():
    assert list(evenly_spaced(3, 5)) == [0, 1, 2]
    spread = evenly_spaced(1000, 5)
    assert list(spread) == [0, 250, 500, 749, 999]


def test_keep_distinct_keeps_the_best_of_each_group():
    a, b = np.eye(3)[0], np.eye(3)[1]
    near_a = l2_normalize(a + 0.05 * b)
    vectors = np.stack([a, near_a, b, l2_normalize(b + 0.01 * a)])
    assert keep_distinct(vectors, 0.99) == [0, 2]
    assert keep_distinct(vectors, 0.99999) == [0, 1, 2, 3]
    assert keep_distinct(np.zeros((0, 3)), 0.5) == []
    with pytest.raises(ValueError):
        keep_distinct(vectors, 1.5)
