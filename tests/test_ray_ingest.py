"""``index --ray`` on a real local Ray cluster: the same items and vectors as the local pipeline, and a
cluster that cannot be reached is one line and exit status 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import EXAMPLE_MEDIA, REPO, draw_image
from test_cli import assert_one_line_error, run_cli

import bindsearch
from bindsearch.modality import BUILTIN_MODALITIES

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"


def _vectors_by_path(library: Path) -> dict[tuple[str, str], np.ndarray]:
    out = {}
    with bindsearch.open_library(library) as lib:
        for modality in BUILTIN_MODALITIES:
            ids, vectors = lib.stored_vectors(modality)
            paths = lib.items(ids.tolist())
            out.update({(paths[int(i)][0], modality.value): vectors[n] for n, i in enumerate(ids)})
    return out


def test_a_ray_ingest_stores_the_vectors_of_the_local_pipeline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BINDSEARCH_DTYPE", "fp32")  # the same arithmetic on both sides, to the bit
    media = tmp_path / "media"
    shutil.copytree(EXAMPLE_MEDIA, media)
    local = run_cli("index", media, "--library", tmp_path / "local", "--space", TINY_IMAGEBIND, "--json")
    on_ray = run_cli("index", media, "--library", tmp_path / "ray", "--space", TINY_IMAGEBIND, "--json", "--ray")
    assert local.exit_code == 0 and on_ray.exit_code == 0, on_ray.stderr
    a, b = json.loads(local.stdout), json.loads(on_ray.stdout)
    assert (b["added"], b["failed"], b["windows"]) == (a["added"], a["failed"], a["windows"]) and a["added"] > 10
    assert a["ray_startup_seconds"] is None and b["ray_startup_seconds"] > 0
    assert a["ray_actors_seconds"] is None and b["ray_actors_seconds"] > 0
    assert b["precision"] == "fp32"
    want, got = _vectors_by_path(tmp_path / "local"), _vectors_by_path(tmp_path / "ray")
    assert sorted(got) == sorted(want)
    for key, vector in want.items():
        assert np.allclose(got[key], vector, atol=1e-6), key
    # A second run finds nothing to do, and starts no Ray.
    again = json.loads(run_cli("index", media, "--library", tmp_path / "ray", "--json", "--ray").stdout)
    assert again["unchanged"] == a["added"] and again["ray_startup_seconds"] is None
    assert again["ray_actors_seconds"] is None


def test_an_actor_killed_while_reading_costs_one_file_and_the_run_goes_on(tmp_path: Path) -> None:
    """A file whose decoder takes its Ray actor down (read_hooks.misbehave, BINDSEARCH_READ_HOOK): the
    batch lost with the actor is read again file by file on a new actor, and only that file fails."""
    folder = tmp_path / "media"
    names = [f"p{i:02d}.png" for i in range(12)]
    names[5] = "kill-05.png"
    for i, name in enumerate(names):
        draw_image(folder / name, seed=200 + i, size=(48, 40))
    env = {**os.environ, "BINDSEARCH_READ_HOOK": "read_hooks:misbehave",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", "index", str(folder), "--library",
                           str(tmp_path / "lib"), "--space", str(TINY_IMAGEBIND), "--batch-size", "4", "--json",
                           "--ray"], capture_output=True, text=True, timeout=600, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert (report["added"], report["failed"]) == (11, 1), report
    [error] = report["errors"]
    assert Path(error["path"]).name == "kill-05.png"
    assert error["reason"].startswith("the Ray actor reading it ended abruptly"), error


@pytest.mark.parametrize("args, fragment", [
    (["--ray-address", "ray://127.0.0.1:9"], "cannot start or reach Ray at ray://127.0.0.1:9"),
    (["--ray", "--workers", "2"], "give one of --ray and --workers"),
])
def test_ray_arguments_that_cannot_work_are_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    media = tmp_path / "media"
    shutil.copytree(EXAMPLE_MEDIA, media)
    done = run_cli("index", media, "--library", tmp_path / "lib", "--space", TINY_IMAGEBIND, *args)
    assert done.exit_code == 2, done.output
    assert_one_line_error(done.stderr, fragment)
