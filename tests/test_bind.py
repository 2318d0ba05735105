"""``bindsearch bind`` for real: a tower bound on generated (picture, recording) pairs, on the tiny random
ImageBind space, finds pictures with the right colour and shape; two towers bound separately find each
other; a killed run resumes; a library of the base space takes the bound space keeping its images."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO
from test_cli import assert_one_line_error, bindsearch_exe, run_cli

import bindsearch
from bindsearch.bind import bind
from bindsearch.modality import Modality

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"
DEMO = REPO / "examples" / "make_bind_demo.py"
FAST = {"space": str(TINY_IMAGEBIND), "size": "tiny", "batch_size": 32}


def make_demo(folder: Path, pairs: int, seed: int, modality: str = "vibration") -> Path:
    subprocess.run([sys.executable, str(DEMO), str(folder), "--pairs", str(pairs), "--seed", str(seed),
                    "--modality", modality], check=True, capture_output=True)
    return folder / "pairs.csv"


def attributes(path: str) -> tuple[str, str]:
    """(colour, shape) from a demo file's name: 00012-red-square.png."""
    _, colour, shape = Path(path).stem.split("-")
    return colour, shape


@pytest.fixture(scope="module")
def vibration(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("vibration")
    pairs = make_demo(root / "data", 360, seed=0)
    report = bind(pairs, "vibration", root / "bound", input="timeseries", epochs=12, **FAST)
    return root, report


def test_a_new_modality_retrieves_its_images_far_above_chance(vibration):
    _, report = vibration
    assert report.modality == "vibration" and report.pairs == 360 and report.heldout == 36
    assert report.chance[5] == pytest.approx(5 / 36)
    # Exact pairs among 36 held-out pictures, of which about three share each colour and shape.
    assert report.recall_to_image[5] >= 3 * report.chance[5], report
    assert report.recall_from_image[5] >= 3 * report.chance[5], report
    spec = json.loads(Path(report.space).read_text())
    assert spec["model"] == "bound" and list(spec["towers"]) == ["vibration"]
    assert spec["towers"]["vibration"]["checkpoint"] == "vibration.pt"  # relative: the folder can move
    assert spec["towers"]["vibration"]["settings"]["channels"] == 3


def test_a_recording_finds_pictures_of_its_colour_and_shape(vibration, tmp_path):
    _, report = vibration
    fresh = tmp_path / "fresh"
    make_demo(fresh, 40, seed=7)  # pictures and recordings never seen in training
    lib = tmp_path / "lib"
    done = run_cli("index", fresh / "images", fresh / "vibration", "--library", lib, "--space", report.space,
                   "--json")
    assert done.exit_code == 0, done.output
    indexed = json.loads(done.stdout)
    assert indexed["added"] == 80 and indexed["failed"] == 0
    right = []
    queries = sorted((fresh / "vibration").glob("*.csv"))[:20]
    with bindsearch.open_library(lib) as library:
        assert library.info().counts == {Modality.IMAGE: 40, Modality("vibration"): 40}
        for query in queries:
            shown = run_cli("query", f"vibration:{query}", "--target", "image", "-k", "1", "--library", lib,
                            "--json")
            assert shown.exit_code == 0, shown.output
            hit = json.loads(shown.stdout)[0]
            assert hit["modality"] == "image"
            right.append(attributes(hit["path"]) == attributes(str(query)))
    # 12 colour-and-shape combinations: chance is 1/12.
    assert np.mean(right) >= 0.4, right
    # A recording that is not there is said, not searched as the words "vibration:missing.csv".
    missing = run_cli("query", f"vibration:{tmp_path / 'missing.csv'}", "--library", lib)
    assert missing.exit_code == 2
    assert_one_line_error(missing.stderr, "missing.csv")


def test_two_modalities_bound_apart_find_each_other(vibration, tmp_path):
    _, report = vibration
    # A second sensor, bound on pictures of its own, never paired with the first.
    sonar_pairs = make_demo(tmp_path / "sonar-data", 360, seed=1, modality="sonar")
    both = bind(sonar_pairs, "sonar", tmp_path / "sonar", input="timeseries", epochs=12,
                **{**FAST, "space": report.space})
    spec = json.loads(Path(both.space).read_text())
    assert sorted(spec["towers"]) == ["sonar", "vibration"]
    space = bindsearch.load_space(both.space)
    vib_fresh = tmp_path / "vib-fresh"
    sonar_fresh = tmp_path / "sonar-fresh"
    make_demo(vib_fresh, 48, seed=11)
    make_demo(sonar_fresh, 48, seed=12, modality="sonar")
    vib_files = sorted((vib_fresh / "vibration").glob("*.csv"))
    sonar_files = sorted((sonar_fresh / "sonar").glob("*.csv"))
    vib = np.stack([space.embed("vibration", f) for f in vib_files])
    sonar = np.stack([space.embed("sonar", f) for f in sonar_files])
    best = (sonar @ vib.T).argmax(axis=1)
    right = [attributes(str(vib_files[j])) == attributes(str(s)) for s, j in zip(sonar_files, best)]
    colour = [attributes(str(vib_files[j]))[0] == attributes(str(s))[0] for s, j in zip(sonar_files, best)]
    assert np.mean(right) >= 3 / 12, right  # chance: 1/12
    assert np.mean(colour) >= 0.5, colour  # chance: 1/4


def test_a_killed_run_resumes_to_the_same_tower(tmp_path):
    pairs = make_demo(tmp_path / "data", 200, seed=3)
    args = [bindsearch_exe(), "bind", str(pairs), "--modality", "vibration", "--input", "timeseries",
            "--space", str(TINY_IMAGEBIND), "--tower-size", "tiny", "--batch-size", "32", "--epochs", "6"]
    whole = subprocess.run([*args, "--out", str(tmp_path / "whole"), "--json"], capture_output=True, text=True,
                           timeout=300)
    assert whole.returncode == 0, whole.stderr
    killed = subprocess.Popen([*args, "--out", str(tmp_path / "killed")], stderr=subprocess.PIPE, text=True,
                              stdout=subprocess.DEVNULL)
    assert killed.stderr is not None
    for line in killed.stderr:
        if line.startswith("epoch 2:"):
            os.kill(killed.pid, signal.SIGKILL)
            break
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    again = run_cli("bind", pairs, "--modality", "vibration", "--out", tmp_path / "killed")
    assert again.exit_code == 2
    assert "holds a bind run already: add --resume" in again.stderr
    resumed = subprocess.run([bindsearch_exe(), "bind", str(pairs), "--modality", "vibration", "--out",
                              str(tmp_path / "killed"), "--resume", "--json"], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "epoch 1:" not in resumed.stderr and "epoch 3:" in resumed.stderr  # (it went on from epoch 2)
    import torch

    a = torch.load(tmp_path / "whole" / "vibration.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "killed" / "vibration.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads(resumed.stdout)["recall@1"] == json.loads(whole.stdout)["recall@1"]


def test_a_library_of_the_base_takes_a_fine_tuned_tower_keeping_its_images(tmp_path):
    data = tmp_path / "data"
    make_demo(data, 60, seed=5)
    rng = np.random.default_rng(0)
    (data / "imu").mkdir()
    rows = ["image,other"]
    for i, image in enumerate(sorted((data / "images").glob("*.png"))):
        np.savetxt(data / "imu" / f"{i:03d}.csv", rng.normal(0, 1, (400, 6)), delimiter=",", fmt="%.4f")
        rows.append(f"images/{image.name},imu/{i:03d}.csv")
    (data / "imu-pairs.csv").write_text("\n".join(rows) + "\n")
    lib = tmp_path / "lib"
    first = run_cli("index", data / "images", data / "imu", "--library", lib, "--space", TINY_IMAGEBIND, "--json")
    assert json.loads(first.stdout)["added"] == 120
    run_cli("tag", data / "imu" / "000.csv", "--add", "walk", "--library", lib)
    with bindsearch.open_library(lib) as library:
        images_before = library.stored_vectors(Modality.IMAGE)
        imu_before = library.stored_vectors(Modality.IMU)

    tuned = bind(data / "imu-pairs.csv", "imu", tmp_path / "imu-tuned", epochs=2,
                 **{**FAST, "size": None, "batch_size": 16})
    again = run_cli("index", data / "images", data / "imu", "--library", lib, "--space", tuned.space, "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert (report["unchanged"], report["updated"], report["added"]) == (60, 60, 0)
    with bindsearch.open_library(lib) as library:
        assert library.space.name.endswith("+imu")
        ids, vectors = library.stored_vectors(Modality.IMAGE)
        assert np.array_equal(ids, images_before[0]) and np.array_equal(vectors, images_before[1])
        ids, vectors = library.stored_vectors(Modality.IMU)
        assert np.array_equal(ids, imu_before[0]) and not np.allclose(vectors, imu_before[1])
    tagged = run_cli("query", "--imu", data / "imu" / "001.csv", "--tag", "walk", "--library", lib, "--json")
    assert [h["path"] for h in json.loads(tagged.stdout)] == [str(data / "imu" / "000.csv")]


def test_a_library_of_the_base_takes_a_new_modality(vibration, tmp_path):
    root, report = vibration
    lib = tmp_path / "lib"
    images = root / "data" / "images"
    run_cli("index", images, "--library", lib, "--space", TINY_IMAGEBIND)
    with bindsearch.open_library(lib) as library:
        before = library.stored_vectors(Modality.IMAGE)
    done = run_cli("index", images, root / "data" / "vibration", "--library", lib, "--space", report.space, "--json")
    indexed = json.loads(done.stdout)
    assert (indexed["unchanged"], indexed["added"], indexed["updated"]) == (360, 360, 0)
    with bindsearch.open_library(lib) as library:
        ids, vectors = library.stored_vectors(Modality.IMAGE)
        assert np.array_equal(ids, before[0]) and np.array_equal(vectors, before[1])
    info = json.loads(run_cli("info", "--library", lib, "--json").stdout)
    assert info["counts"] == {"image": 360, "vibration": 360}
    assert list(info["modalities"])[-1] == "vibration" and info["modalities"]["vibration"] == "timeseries"
    assert "vibration (timeseries)" in run_cli("info", "--library", lib).stdout
    # Another base is another space: refused, as before.
    other = tmp_path / "other.json"
    other.write_text(TINY_IMAGEBIND.read_text().replace('"seed": 0', '"seed": 3'))
    refused = run_cli("query", "--text", "a dog", "--library", lib, "--space", other)
    assert refused.exit_code == 2 and "holds vectors of space" in refused.stderr


@pytest.mark.parametrize("args, fragment", [
    (["--modality", "image", "--input", "timeseries"], "the image tower is what every other tower is bound to"),
    (["--modality", "text"], "--modality text collides with a built-in modality"),
    (["--modality", "Not A Name", "--input", "timeseries"], "is not a modality name"),
    (["--modality", "sonar"], "--input is needed for a new modality"),
    (["--modality", "sonar", "--input", "smell"], "--input must be one of timeseries, image1, audio"),
    (["--modality", "sonar", "--input", "timeseries", "--batch-size", "64"], "fewer than two batches of 64"),
    (["--modality", "sonar", "--input", "timeseries", "--epochs", "0"], "--epochs must be at least 1"),
    (["--modality", "sonar", "--input", "timeseries", "--resume"], "nothing to resume in"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args, fragment):
    pairs = make_demo(tmp_path / "data", 60, seed=0)
    done = run_cli("bind", pairs, "--out", tmp_path / "out", "--space", TINY_IMAGEBIND, "--tower-size", "tiny",
                   *args)
    assert done.exit_code == 2, done.output
    assert_one_line_error(done.stderr, fragment)


def test_bad_pair_files_are_reported_and_skipped_up_to_a_tenth(tmp_path):
    pairs = make_demo(tmp_path / "data", 100, seed=0)
    lines = pairs.read_text().splitlines()
    lines[3] = "images/missing.png," + lines[3].split(",")[1]
    (tmp_path / "data" / lines[5].split(",")[1]).write_text("ch0,ch1,ch2\n1,2,oops\n")
    pairs.write_text("\n".join(lines) + "\n")
    done = run_cli("bind", pairs, "--modality", "vibration", "--input", "timeseries", "--out", tmp_path / "out",
                   "--space", TINY_IMAGEBIND, "--tower-size", "tiny", "--epochs", "1", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["pairs"] == 98
    assert [(s["row"], Path(s["path"]).name) for s in report["skipped"]] == [
        (4, "missing.png"), (6, Path(lines[5].split(",")[1]).name)]
    assert "no such file" in report["skipped"][0]["reason"] and "oops" in report["skipped"][1]["reason"]
    assert "skipped row 4" in done.stderr
    # More than a tenth bad: stopped before training, nothing written but the run's settings.
    pairs.write_text("\n".join(lines[:1] + [f"images/gone{i}.png,{ln.split(',')[1]}" if i < 15 else ln
                                            for i, ln in enumerate(lines[1:])]) + "\n")
    stopped = run_cli("bind", pairs, "--modality", "vibration", "--input", "timeseries", "--out",
                      tmp_path / "out2", "--space", TINY_IMAGEBIND, "--tower-size", "tiny")
    assert stopped.exit_code == 2
    said = [line for line in stopped.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(said) == 16 and all(line.startswith("  skipped row ") for line in said[:15]), said
    assert_one_line_error(said[-1], "15 of 100 pairs", "cannot be used")
    assert not (tmp_path / "out2" / "space.json").exists()


def test_a_pairs_file_without_its_header_is_refused(tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("a.png,b.csv\n")
    done = run_cli("bind", pairs, "--modality", "sonar", "--input", "timeseries", "--out", tmp_path / "out",
                   "--space", TINY_IMAGEBIND)
    assert done.exit_code == 2
    assert_one_line_error(done.stderr, "must start with the header line 'image,other'")
