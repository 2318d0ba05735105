"""A value that is not finite anywhere (a stored vector, the reference sample, a query, a weight) never
turns other results into NaN, and what reaches a user is finite: scores in [-1, 1], strict JSON."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from bindsearch.cli.render import print_json
from helpers import IMAGEBIND_TINY, draw_image, imagebind_fixture_missing, write_imagebind_space

import bindsearch
from bindsearch.errors import UsageError
from bindsearch.modality import Modality
from bindsearch.search import Hit, QueryTerm, parse_term
from bindsearch.search.calibration import score_scale, usable_scores
from bindsearch.search.dedup import keep_distinct
from bindsearch.vectors import combine, l2_normalize


def test_calibration_ignores_reference_vectors_that_are_not_finite():
    rng = np.random.default_rng(0)
    reference = l2_normalize(rng.normal(size=(50, 16)))
    query = l2_normalize(rng.normal(size=16))
    poisoned = np.concatenate([reference, np.full((2, 16), np.nan, np.float32), np.full((1, 16), np.inf)])
    assert score_scale(query, poisoned) == score_scale(query, reference)
    assert math.isfinite(score_scale(query, poisoned).mean)


def test_scores_that_are_not_finite_or_outside_the_cosine_range_are_left_out():
    scores = np.array([1.0000001, 0.5, np.nan, 1e37, -np.inf, -0.2, 0.0], np.float32)
    ids = np.array([1, 2, 3, 4, 5, 6, -1])
    kept, dropped = usable_scores(scores, ids)
    assert kept == [(1.0, 1), (0.5, 2), (pytest.approx(-0.2), 6)]
    assert dropped == 3
    with pytest.raises(ValueError):
        usable_scores(scores, ids[:3])


def test_dedup_keeps_the_others_beside_a_row_that_is_not_finite():
    rows = l2_normalize(np.eye(4, dtype=np.float32))
    rows[1] = np.nan
    assert keep_distinct(rows, 0.9) == [0, 1, 2, 3]
    rows[0] = np.nan
    assert keep_distinct(rows, 0.9) == [0, 1, 2, 3]


def test_a_damaged_vector_in_an_index_leaves_the_other_results_finite_and_unchanged(library, media):
    library.index([media])
    query = [QueryTerm.text("a dog")]
    before = [(h.path, h.score, h.calibrated) for h in library.search(query, k=10)]
    ids = library.vector_index(Modality.IMAGE).ids()
    index = library.vector_index(Modality.IMAGE)
    index.remove(ids[:1])
    # One item's vector as NaN, another's as huge (a cosine of 1e37), held in memory only.
    index.add(np.array([ids[0], 10_000]), np.stack([np.full(library.dim, np.nan, np.float32),
                                                    np.full(library.dim, 1e18, np.float32)]))
    hits = library.search(query, k=10)
    assert all(math.isfinite(h.score) and -1 <= h.score <= 1 and math.isfinite(h.calibrated) for h in hits)
    assert ids[0] not in [h.id for h in hits]
    unchanged = [b for b in before if b[0] != library.items([ids[0]])[ids[0]][0]]
    assert [(h.path, h.score) for h in hits] == [(p, s) for p, s, _ in unchanged]


def test_weights_that_overflow_a_float32_are_refused():
    huge = "1" + "0" * 40
    with pytest.raises(UsageError, match="not a finite number"):
        parse_term(f"{huge}:dog")
    for weight in (float("nan"), float("inf"), 1e39):
        with pytest.raises(UsageError):
            QueryTerm.text("dog", weight)
    with pytest.raises(ValueError):
        combine([np.ones(3), np.ones(3)], [1.0, 1e39])


def test_an_overflowing_weight_on_the_command_line_is_one_error_line(tmp_path, tiny_space_file, media):
    with bindsearch.open_library(tmp_path / "lib", tiny_space_file, create=True) as lib:
        lib.index([media])
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", "query", "1" + "0" * 40 + ":dog",
                           "--library", str(tmp_path / "lib"), "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert "RuntimeWarning" not in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: query term weight")


def test_query_vectors_that_are_not_finite_are_refused(library, media):
    library.index([media])
    with pytest.raises(UsageError, match="finite"):
        library.search(np.full(library.dim, np.nan, np.float32))
    with pytest.raises(UsageError, match="finite"):
        library.search([QueryTerm(Modality.IMAGE, np.full(library.dim, np.inf, np.float32))])


def test_json_output_is_strict_even_for_a_value_that_is_not_finite(capsys):
    print_json([Hit(1, float("nan"), float("inf"), Modality.IMAGE, "/a.png", 1), {"x": -math.inf}])
    text = capsys.readouterr().out
    parsed = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert parsed[0]["score"] is None and parsed[0]["calibrated"] is None and parsed[1] == {"x": None}


@pytest.mark.skipif(imagebind_fixture_missing() is not None, reason=str(imagebind_fixture_missing()))
def test_a_checkpoint_with_nan_weights_stores_no_vector(tmp_path):
    import torch

    state = torch.load(IMAGEBIND_TINY / "model.pth", weights_only=True)
    checkpoint = tmp_path / "nan.pth"
    torch.save({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()},
               checkpoint)
    space = bindsearch.load_space(write_imagebind_space(tmp_path / "space.json", str(checkpoint)))
    draw_image(tmp_path / "media" / "a.png", seed=1)
    (tmp_path / "media" / "note.txt").write_text("a dog\n")
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        report = lib.index([tmp_path / "media"], workers=0)
        assert (report.added, report.failed) == (0, 2)
        assert {e.reason for e in report.errors} == {
            "the model gave no finite embedding: are its weights damaged, or the input beyond what it takes?"}
        assert lib.counts() == {}
