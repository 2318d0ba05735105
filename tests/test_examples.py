"""The example script and the README's Python snippet run as written."""

import ast
import os
import re
import subprocess
import sys

from helpers import REPO


def test_example_script_runs_offline():
    result = subprocess.run([sys.executable, str(REPO / "examples" / "search_photos.py")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "indexed 14 files (0 failed)" in result.stdout
    assert "sound -> images:" in result.stdout
    lines = result.stdout.splitlines()
    first_image_hit = lines[lines.index("image -> anything:") + 1]
    assert "1.000" in first_image_hit and "cat.jpg" in first_image_hit


def test_readme_python_snippet_runs(tmp_path):
    readme = (REPO / "README.md").read_text()
    [snippet] = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    snippet = snippet.replace('"/tmp/demo"', repr(str(tmp_path / "demo")))
    result = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=REPO,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-2].endswith("coffee.jpg")  # the mixed query's best result: its image term's own file
    label, scores = lines[-1].split(" ", 1)
    probabilities = dict(ast.literal_eval(scores))
    assert label in probabilities and set(probabilities) == {"dog", "cat", "rocket"}
    assert abs(sum(probabilities.values()) - 1) < 0.01


def test_example_script_reports_a_space_it_cannot_load_in_one_line(tmp_path):
    env = {**os.environ, "BINDSEARCH_OFFLINE": "1", "BINDSEARCH_CACHE": str(tmp_path / "empty-cache")}
    result = subprocess.run([sys.executable, str(REPO / "examples" / "search_photos.py"), "imagebind-huge"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "checkpoint is not in the cache" in line
