"""Rates measured from the first batch, and none where too few files or too little time tell one."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bindsearch.cli.render import index_summary
from bindsearch.indexer import IndexObserver, IndexReport
from bindsearch.indexer.rates import MIN_FILES, MIN_SECONDS, RateClock, files_per_second, seconds_left
from helpers import REPO, draw_image

import bindsearch

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"


def test_files_per_second_needs_a_few_files_and_a_second():
    assert files_per_second(100, 4.0) == 25.0
    assert files_per_second(MIN_FILES, MIN_SECONDS) == MIN_FILES / MIN_SECONDS
    assert files_per_second(MIN_FILES - 1, 60.0) is None
    assert files_per_second(1000, MIN_SECONDS / 2) is None
    with pytest.raises(ValueError, match="negative"):
        files_per_second(-1, 2.0)


def test_seconds_left_without_a_rate_is_unknown():
    assert seconds_left(50, 25.0) == 2.0
    assert seconds_left(50, None) is None
    assert seconds_left(0, 10.0) == 0.0
    with pytest.raises(ValueError, match="negative"):
        seconds_left(-3, 1.0)


def test_the_clock_leaves_out_the_first_batch_and_what_came_before_it():
    clock = RateClock()
    assert clock.rate() is None
    clock.done(32, now=40.0)  # 40 s of model loading, then the first batch
    assert clock.rate(now=100.0) is None  # nothing after it yet: 0 files
    clock.done(64, now=41.0)
    clock.done(96, now=42.0)
    assert clock.rate() == 32.0  # 64 files in the 2 s after the first batch, not 96 in 42 s
    assert clock.rate(now=44.0) == 16.0  # still in progress: up to now
    assert clock.rate(now=30.0) == 32.0  # a "now" before the last batch counts as the last batch


def test_summary_and_json_say_so_when_there_is_no_rate():
    report = IndexReport(added=40, embedded=40, rates={"image": 12.345, "depth": None}, precision="bf16")
    assert "embedded in bf16: image 12.3 files/s, depth n/a" in index_summary(report)
    from bindsearch.jsonable import to_jsonable

    assert json.loads(json.dumps(to_jsonable(report)))["rates"] == {"image": 12.345, "depth": None}


def test_a_run_of_a_few_files_per_modality_has_no_rates(tmp_path: Path):
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", "index", str(REPO / "examples" / "media"),
                           "--space", str(TINY_IMAGEBIND), "--library", str(tmp_path / "lib"), "--json"],
                          capture_output=True, text=True, timeout=300)
    report = json.loads(done.stdout)
    assert report["added"] == 14
    # One to five files a modality: each is its modality's first batch, so none tells a rate.
    assert report["rates"] == dict.fromkeys(["audio", "depth", "image", "imu", "text", "thermal", "video"])


class BatchTimes(IndexObserver):
    """When each batch was reported done, and how many files it held."""

    def __init__(self) -> None:
        self.batches: list[tuple[float, int]] = []

    def advanced(self, n: int = 1, modality: str | None = None) -> None:
        self.batches.append((time.monotonic(), n))


def test_a_rate_counts_from_the_first_batch_on(tmp_path: Path):
    for i in range(12):
        draw_image(tmp_path / "m" / f"{i}.png", seed=i)
    observer = BatchTimes()
    with bindsearch.open_library(tmp_path / "lib", TINY_IMAGEBIND, create=True) as lib:
        report = lib.index([tmp_path / "m"], batch_size=2, workers=0, observer=observer)
    assert [n for _, n in observer.batches] == [2] * 6
    (first, _), (last, _) = observer.batches[0], observer.batches[-1]
    if last - first < MIN_SECONDS:  # a fast machine: too short to tell
        assert report.rates == {"image": None}
    else:  # the ten files after the first batch, over their time: not the model's building before it
        assert report.rates["image"] == pytest.approx(10 / (last - first), rel=0.05)
