"""Results that read well: overlapping windows of a file as one moment, --like without the item's copies."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile
from bindsearch.cli.app import app
from helpers import REPO, draw_image
from typer.testing import CliRunner

import bindsearch
from bindsearch import QueryTerm
from bindsearch.search.moments import merge_overlapping

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"
RATE = 16000


@pytest.fixture(scope="module")
def space() -> bindsearch.Space:
    return bindsearch.load_space(TINY_IMAGEBIND)


@dataclass(frozen=True)
class Found:
    score: float
    item_id: int
    start: float | None = None
    end: float | None = None
    window_id: int | None = None


def test_overlapping_windows_of_a_file_merge_around_the_best_one():
    found = [Found(0.9, 1, 154.0, 160.0, 12), Found(0.8, 1, 156.0, 162.0, 13), Found(0.7, 2, 2.0, 8.0, 21),
             Found(0.65, 1, 150.0, 156.0, 11), Found(0.6, 1, 160.0, 166.0, 14), Found(0.5, 1, 166.0, 172.0, 16),
             Found(0.45, 1, 162.0, 168.0, 15), Found(0.4, 3), Found(0.3, 1, 30.0, 36.0)]
    assert merge_overlapping(found) == [
        Found(0.9, 1, 150.0, 162.0, 12),  # 2:34-2:40 with 2:36-2:42 and 2:30-2:36: one moment, the best one's score
        Found(0.7, 2, 2.0, 8.0, 21),  # another file's window overlaps nothing of its own
        # 2:40-2:46 overlaps the moment but not its best window: left out, the moment does not creep on
        # 2:46-2:52 touches the first moment only: a moment of its own, widened by 2:42-2:48
        Found(0.5, 1, 162.0, 172.0, 16),
        Found(0.4, 3),  # a whole file
        Found(0.3, 1, 30.0, 36.0),
    ]
    assert merge_overlapping([]) == []


def tones(seconds: float, seed: int) -> np.ndarray:
    """A different tone every second: no two windows alike."""
    rng = np.random.default_rng(seed)
    t = np.arange(RATE) / RATE
    return np.concatenate([0.3 * np.sin(2 * np.pi * 200 * 2 ** rng.uniform(0, 4) * t)
                           for _ in range(int(seconds))]).astype(np.float32)


def test_windows_lists_each_moment_once(tmp_path, space):
    media = tmp_path / "media"
    media.mkdir()
    soundfile.write(media / "long.wav", tones(30, seed=3), RATE, subtype="PCM_16")
    soundfile.write(media / "other.wav", tones(20, seed=4), RATE, subtype="PCM_16")
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        assert lib.index([media], workers=0).failed == 0
        item = next(i for i in lib.items_under([str(media)]) if i.path.endswith("long.wav"))
        window = next(w for w in lib.windows_of(item.id) if w[0] == 12.0)
        hits = lib.search(window[2], targets=["audio"], k=4, windows=True)
        assert len(hits) == 4
        # The window itself first, widened by the windows around it that are listed, by at most 4 s a side.
        assert hits[0].path == item.path and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert 8.0 <= hits[0].start <= 12.0 and 18.0 <= hits[0].end <= 22.0
        assert hits[0].end - hits[0].start > 6.0
        for k in (4, 100):
            listed = lib.search(window[2], targets=["audio"], k=k, windows=True)
            for a in listed:
                for b in listed:
                    if a is not b and a.path == b.path:  # two moments of one file never overlap
                        assert a.end <= b.start or b.end <= a.start, (a, b)
            assert listed[0] == hits[0]


def test_like_leaves_out_links_and_byte_identical_copies(tmp_path, space):
    media = tmp_path / "media"
    original = draw_image(media / "cat.png", seed=1)
    for seed in range(2, 6):
        draw_image(media / f"other{seed}.png", seed=seed)
    (media / "copy").mkdir()
    shutil.copyfile(original, media / "copy" / "cat-copy.png")
    os.symlink(original, media / "cat-link.png")
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        assert lib.index([media], workers=0).added == 7
        hits = lib.search([QueryTerm.like(original)], targets=["image"], k=10)
        assert sorted(Path(h.path).name for h in hits) == [f"other{s}.png" for s in range(2, 6)]
        # The copy asked for by its own path leaves out the original just the same.
        hits = lib.search([QueryTerm.like(media / "copy" / "cat-copy.png")], targets=["image"], k=10)
        assert all(h.score < 0.9999 for h in hits) and len(hits) == 4
    result = CliRunner().invoke(app, ["query", "--like", str(original), "--json", "--library", str(tmp_path / "lib")])
    assert result.exit_code == 0, result.output
    assert all("cat" not in Path(h["path"]).name for h in json.loads(result.stdout))
    helped = CliRunner().invoke(app, ["query", "--help"], terminal_width=200)
    assert "byte-identical copy" in helped.stdout
