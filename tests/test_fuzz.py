"""A short seeded fuzz run over every loader and encoder (tests/fuzz/fuzz_loaders.py has the long one)."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import REPO

FUZZER = REPO / "tests" / "fuzz" / "fuzz_loaders.py"


def test_mutated_files_of_every_modality_embed_or_are_refused_in_one_line() -> None:
    done = subprocess.run([sys.executable, str(FUZZER), "--cases", "300", "--seed", "0", "--time-limit", "20"],
                          capture_output=True, text=True, timeout=600)
    report = json.loads(done.stdout)
    assert report["failures"] == [], json.dumps(report["failures"], indent=1)
    assert done.returncode == 0, done.stderr[-2000:]
    assert report["cases"] == 300
    # Both outcomes occur: the mutations neither all break the files nor all leave them valid.
    assert report["embedded"] > 30 and report["refused"] > 30, report
