"""A re-index with nothing to do stays cheap: it never imports the model code (torch) nor the decoders.

Speed itself is shown by benchmarks/noop_reindex.py; these are the properties
that keep it fast, checked in fresh processes.
"""

import json
import shutil
import subprocess
import sys

import pytest
from bindsearch.indexer.scan import scan
from helpers import EXAMPLE_MEDIA, REPO, TINY_SPACE_FILE

import bindsearch
from bindsearch.modality import modality_from_path

HEAVY = ("torch", "open_clip", "av", "PIL", "faiss", "soundfile", "torchaudio")

# Runs the command line in this process, then says which heavy modules it imported.
# The command's stdout (its --json report) is left alone; the finding goes to stderr.
RUN_CLI = r"""
import json, sys
from bindsearch.cli.app import app
sys.argv = ["bindsearch", *sys.argv[1:]]
code = 0
try:
    app()
except SystemExit as exc:
    code = exc.code or 0
heavy = sorted(m for m in json.loads(HEAVY) if m in sys.modules)
print("IMPORTED " + json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def run_cli_in_fresh_process(*args: str) -> tuple[dict, dict]:
    script = RUN_CLI.replace("json.loads(HEAVY)", repr(list(HEAVY)))
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("IMPORTED ")]
    assert proc.returncode == 0 and lines, proc.stderr
    return json.loads(proc.stdout), json.loads(lines[-1][len("IMPORTED "):])


def test_importing_the_command_line_imports_no_model_code():
    code = f"import sys, bindsearch.cli.app; print([m for m in {list(HEAVY)!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("space_file", [TINY_SPACE_FILE, REPO / "examples" / "tiny-imagebind.json"],
                         ids=["openclip", "imagebind"])
@pytest.mark.parametrize("space_again", [False, True], ids=["own-space", "space-given-again"])
def test_noop_reindex_loads_no_model(tmp_path, media, space_file, space_again):
    shutil.copy(EXAMPLE_MEDIA / "sounds" / "birdsong.wav", media / "birdsong.wav")
    with bindsearch.open_library(tmp_path / "lib", space_file, create=True) as lib:
        first = lib.index([media])
    assert first.added > 0 and first.failed == 0

    # Given again, the space file is parsed and checked (its fingerprint against the
    # library's), which must not need the model code either.
    extra = ["--space", space_file] if space_again else []
    report, found = run_cli_in_fresh_process("index", media, "--library", tmp_path / "lib", "--json", *extra)
    assert found == {"code": 0, "heavy": []}
    assert report["unchanged"] == first.added
    assert (report["added"], report["updated"], report["embedded"], report["removed"], report["failed"]) == (0,) * 5


@pytest.mark.parametrize("space_file", [TINY_SPACE_FILE, REPO / "examples" / "tiny-imagebind.json"],
                         ids=["openclip", "imagebind"])
def test_loading_a_space_file_and_its_fingerprint_import_no_torch(space_file):
    # What Library.open(path, space=...) does with a space given again.
    code = (f"import sys; from bindsearch.spaces import load_space; s = load_space({str(space_file)!r}); "
            f"s.fingerprint, s.spec, s.name, s.dim; print([m for m in {list(HEAVY)!r} if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_reindex_of_a_removed_file_loads_no_model(tmp_path, media):
    with bindsearch.open_library(tmp_path / "lib", TINY_SPACE_FILE, create=True) as lib:
        first = lib.index([media])
    (media / "a.png").unlink()

    report, found = run_cli_in_fresh_process("index", media, "--library", tmp_path / "lib", "--json")
    assert report["removed"] == 1 and report["unchanged"] == first.added - 1
    # Removing a vector needs the FAISS index, but never the model.
    assert not {"torch", "open_clip", "PIL", "av"} & set(found["heavy"])


def test_the_walk_tells_modalities_as_modality_from_path_does(tmp_path):
    # The walk looks a modality up once per folder and shape of name: it must agree with the rule itself.
    names = ["a.png", "B.PNG", "c.depth.png", "d.Depth.PNG", "e.thermal.jpg", "f.imu.csv", "g.csv", "h.npy",
             "i.x.png", "j..png", "k.png.", "l", "m.depth", "n.thermal.txt", "o.2023.01.jpg", "p.tar.gz",
             "q.depth.npz", "r.imu.png", "s.depth.depth.png", "t.mp4", "u.wav", "v.imu.npy", "w.thermal.tiff"]
    paths = []
    for folder in ["plain", "depth", "thermal/sub", "IMU", "x.depth", "imu/deeper"]:
        for name in names:
            path = tmp_path / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
            paths.append(str(path))
    found = scan([str(tmp_path)])
    by_path = {f.path: f.modality for f in found.files}
    assert {p: modality_from_path(p) for p in paths if modality_from_path(p)} == by_path
    assert found.ignored == sum(modality_from_path(p) is None for p in paths)
