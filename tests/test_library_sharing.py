"""A library shared between processes: one kept open sees what others commit."""

import subprocess
import sys
from pathlib import Path

from helpers import draw_image

import bindsearch
from bindsearch.modality import Modality


def test_a_library_kept_open_sees_what_another_process_indexes(tmp_path, tiny_space_file):
    first, second = tmp_path / "first", tmp_path / "second"
    for i in range(5):
        draw_image(first / f"{i}.png", seed=i)
        draw_image(second / f"{i}.png", seed=10 + i)
    with bindsearch.open_library(tmp_path / "lib", tiny_space_file, create=True) as lib:
        lib.index([first], workers=0)
        query = [bindsearch.QueryTerm.text("a photo")]
        assert len(lib.search(query, k=20)) == 5
        done = subprocess.run([sys.executable, "-m", "bindsearch.cli", "index", second, "--library", lib.path,
                               "--workers", "0"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert lib.counts() == {Modality.IMAGE: 10}
        assert {Path(h.path).parent.name for h in lib.search(query, k=20)} == {"first", "second"}
        assert len(lib.search(query, k=20)) == 10
        # And a run of this process after it builds on the other's index, not on the one loaded before.
        (first / "0.png").unlink()
        assert lib.index([first], workers=0).removed == 1
        assert lib.vector_index(Modality.IMAGE).size == 9
    with bindsearch.open_library(tmp_path / "lib") as again:
        assert len(again.search(query, k=20)) == 9
