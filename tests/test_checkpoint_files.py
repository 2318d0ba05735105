"""Checkpoint files that are not plain state_dicts: refused in one line, and nothing in them runs."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import IMAGEBIND_TINY, TINY_SPACE_FILE, imagebind_fixture_missing, write_imagebind_space

import bindsearch

pytestmark = pytest.mark.skipif(imagebind_fixture_missing() is not None, reason=imagebind_fixture_missing() or "")


class _Payload:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious_files(root: Path, marker: Path) -> dict[str, Path]:
    state = {"modality_trunks.text.x": _Payload(marker)}
    files = {name: root / f"{name}.pth" for name in ("zip", "legacy", "bare_pickle")}
    torch.save(state, files["zip"])
    torch.save(state, files["legacy"], _use_new_zipfile_serialization=False)
    with open(files["bare_pickle"], "wb") as f:  # not torch.save at all; protocol 4 makes torch warn first
        pickle.dump(state, f, protocol=4)
    return files


def _embed_text(space: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bindsearch.cli", "embed", "--space", str(space), "--text", "a dog"],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("kind", ["zip", "legacy", "bare_pickle"])
def test_imagebind_checkpoint_that_would_run_code_is_refused_in_one_line(tmp_path, kind):
    marker = tmp_path / "payload-ran"
    checkpoint = _malicious_files(tmp_path, marker)[kind]
    done = _embed_text(write_imagebind_space(tmp_path / "space.json", checkpoint=str(checkpoint)))
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: ") and "weights_only" not in line
    if kind == "bare_pickle":  # not torch.save's format: refused before it gets to the call
        assert f"cannot read {checkpoint} as a PyTorch state_dict (not a torch.save file of tensors)" in line
    else:
        assert f"{checkpoint} is not a plain state_dict and was not loaded: its pickle would run code" in line
    assert not marker.exists()


def test_openclip_checkpoint_that_would_run_code_is_refused_in_one_line(tmp_path):
    marker = tmp_path / "payload-ran"
    checkpoint = _malicious_files(tmp_path, marker)["legacy"]
    spec = {**json.loads(TINY_SPACE_FILE.read_text()), "pretrained": str(checkpoint)}
    space = tmp_path / "openclip.json"
    space.write_text(json.dumps(spec))
    done = _embed_text(space)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert "is not a plain state_dict and was not loaded: its pickle would run code (posix.system)" in line
    spec["pretrained"] = str(_malicious_files(tmp_path, marker)["bare_pickle"])
    space.write_text(json.dumps(spec))
    with pytest.raises(bindsearch.SpaceError) as refused:
        bindsearch.load_space(space).embed("text", "a dog")
    assert str(refused.value).endswith(": not a torch.save file of tensors") and "\n" not in str(refused.value)
    assert not marker.exists()


def test_legacy_format_state_dict_still_loads_silently(tmp_path):
    state = torch.load(IMAGEBIND_TINY / "model.pth", map_location="cpu", weights_only=True)
    legacy = tmp_path / "legacy.pth"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    done = _embed_text(write_imagebind_space(tmp_path / "legacy.json", checkpoint=str(legacy)))
    assert done.returncode == 0 and done.stderr == "" and "text vector" in done.stdout
    old = bindsearch.load_space(write_imagebind_space(tmp_path / "legacy.json", checkpoint=str(legacy)))
    new = bindsearch.load_space(write_imagebind_space(tmp_path / "zip.json"))
    np.testing.assert_array_equal(old.embed("text", "a dog"), new.embed("text", "a dog"))
