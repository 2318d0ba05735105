"""Every argument is checked before a model loads: bad targets, spaces, filters, terms, paths, devices."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from bindsearch.cli.app import app
from helpers import TINY_SPACE_FILE, draw_image
from typer.testing import CliRunner

import bindsearch
from bindsearch.classify import LabelSet
from bindsearch.errors import UsageError
from bindsearch.modality import Modality
from bindsearch.search import Filters, QueryTerm, parse_date, parse_size, parse_targets
from bindsearch.spaces.torch_runtime import check_device
from bindsearch.windows import WindowSettings

runner = CliRunner()

# Each case runs the real entry point in one fresh process that never imports torch on its own:
# if a case got as far as loading a model or embedding its query, torch would be in sys.modules.
_PROBE = r"""
import contextlib, io, json, os, sys
from bindsearch.cli.app import main
results = []
base = dict(os.environ)
for case in json.loads(sys.argv[1]):
    os.environ.clear()
    os.environ.update(base)
    os.environ.update(case.get("env", {}))
    sys.argv = ["bindsearch", *case["args"]]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            main()
            status = 0
        except SystemExit as exc:
            status = exc.code
    results.append({"status": status, "stderr": stderr.getvalue(), "torch": "torch" in sys.modules})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def tagged_library(tmp_path_factory):
    root = tmp_path_factory.mktemp("checks")
    for n in range(3):
        draw_image(root / "media" / f"p{n}.png", n)
    lib = root / "lib"
    done = runner.invoke(app, ["index", str(root / "media"), "--library", str(lib), "--space", str(TINY_SPACE_FILE)])
    assert done.exit_code == 0, done.output
    assert runner.invoke(app, ["tag", str(root / "media" / "p0.png"), "--add", "red", "--library", str(lib)]
                         ).exit_code == 0
    other = root / "other.json"
    other.write_text(TINY_SPACE_FILE.read_text().replace('"seed": 0', '"seed": 5'))
    return root, lib, other


def test_bad_arguments_fail_in_one_line_before_any_model_loads(tagged_library):
    root, lib, other = tagged_library
    query = ["query", "--text", "a dog", "--library", str(lib)]
    cases = [
        ([*query, "--target", "smell"], "unknown modality 'smell'"),
        ([*query, "--space", str(other)], "holds vectors of space openclip:inline-config/random(seed=0)"),
        # The default space's checkpoint is not there (and may not be fetched): its dimension tells it apart.
        ([*query, "--space", "imagebind-huge"], "not of imagebind-huge (1024 dims)",
         {"BINDSEARCH_OFFLINE": "1"}),
        ([*query, "--max-size", "99999999999999999999999999"], "larger than any file can be"),
        ([*query, "--min-size", "1" + "0" * 19], "larger than any file can be"),
        ([*query, "--min-duration", "nan"], "--min-duration: a duration is a number of seconds, at least 0"),
        ([*query, "--max-duration", "-1"], "--max-duration: a duration is a number of seconds, at least 0"),
        ([*query, "--text", ""], "query term '' is empty"),
        ([*query, "--tag", "red", "--tag", "no-such-tag"], "no item in the library carries the tag 'no-such-tag'"),
        ([*query, "--like", "1" + "0" * 30], "no embedded item with id 1000000000000000000000000000000"),
        ([*query, "--dedup", "nan"], "dedup threshold"),
        (["index", "", "--library", str(lib)], "an empty path names no file or folder"),
        (["tag", "", "--add", "x", "--library", str(lib)], "an empty path names no file or folder"),
        (["index", str(root / "media"), "--library", str(lib), "--window", "1e300"], "at most 86400 s"),
        (["index", str(root / "media"), "--library", str(lib), "--auto-tag", "a,b", "--auto-tag-min", "1.5"],
         "--auto-tag-min is a probability"),
        (["index", str(root / "media"), "--library", str(lib), "--auto-tag-min", "0.5"], "goes with --auto-tag"),
        (["embed", "--text", ""], "query term '' is empty"),
        (["info", "--library", str(lib)], "BINDSEARCH_DEVICE='gpu9' is not a device",
         {"BINDSEARCH_DEVICE": "gpu9"}),
        (["query", "--text", "x", "--library", str(root / "none")], "BINDSEARCH_DEVICE='cpu:2'",
         {"BINDSEARCH_DEVICE": "cpu:2"}),
        (["index", str(root / "media"), "--library", str(lib)],
         "BINDSEARCH_DTYPE: 'double' is not a precision: write fp32, bf16, fp16 or auto",
         {"BINDSEARCH_DTYPE": "double"}),
    ]
    payload = [{"args": c[0], "env": c[2] if len(c) > 2 else {}} for c in cases]
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(payload)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    for (args, fragment, *_), result in zip(cases, json.loads(done.stdout)):
        lines = [line for line in result["stderr"].splitlines() if not line.startswith("warning:")]
        assert result["status"] == 2, (args, result)
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], (args, result)
        assert not result["torch"], (args, "torch was imported: the check came after a model load")


def test_a_gpu_device_that_is_not_there_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", "info", "--library", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "BINDSEARCH_DEVICE": "cuda:99"})
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: BINDSEARCH_DEVICE='cuda:99': PyTorch sees"), done.stderr
    assert "no library" not in done.stderr  # refused before the command did anything


def test_dates_of_any_year_are_dates_and_filter_as_their_bound(tagged_library):
    _, lib, _ = tagged_library
    early, late = parse_date("0001-01-01"), parse_date("9999-12-31T23:59")
    assert math.isfinite(early) and math.isfinite(late) and early < parse_date("2024-05-01") < late
    with bindsearch.open_library(lib) as library:
        term = [QueryTerm.text("a picture")]
        everything = library.search(term, k=10)
        assert len(everything) == 3
        assert library.search(term, k=10, filters=Filters(modified_after=early)) == everything
        assert library.search(term, k=10, filters=Filters(modified_before=parse_date("2300-01-01"))) == everything
        assert library.search(term, k=10, filters=Filters(modified_after=parse_date("2300-01-01"))) == []
        assert library.search(term, k=10, filters=Filters(modified_before=-1e300)) == []
        assert library.search(term, k=10, filters=Filters(max_size=(1 << 63) - 1)) == everything


@pytest.mark.parametrize("fields", [{"max_size": 1 << 63}, {"min_size": -1}, {"min_size": 2.5},
                                    {"modified_after": float("nan")}, {"min_duration": float("inf")},
                                    {"max_duration": -0.5}])
def test_filters_refuse_values_no_file_can_have(fields):
    with pytest.raises(UsageError):
        Filters(**fields)


def test_sizes_keep_every_byte():
    assert parse_size("1.5MB") == 1572864 and parse_size(".5k") == 512 and parse_size("2GiB") == 2 << 30
    assert parse_size("9223372036854775807") == (1 << 63) - 1  # a float would round it up, past int64
    with pytest.raises(UsageError, match="larger than any file"):
        parse_size("9223372036854775808")


def test_targets_are_parsed_without_a_library():
    assert parse_targets(None) is None and parse_targets(["all"]) is None
    assert [m.value for m in parse_targets(["Image", "audio", "image"])] == ["image", "audio"]
    # Any modality name passes without a library (a bound space may add it); a library's space is the judge.
    assert [m.value for m in parse_targets(["image", "smell"])] == ["image", "smell"]
    with pytest.raises(UsageError, match="unknown modality 'smell'"):
        parse_targets(["image", "smell"], known=[Modality.IMAGE, Modality.TEXT])
    with pytest.raises(UsageError, match="unknown modality 'no smell'"):
        parse_targets(["no smell"])


def test_devices():
    assert check_device("cpu") == "cpu" and check_device(" CPU ") == "cpu"
    for bad in ("gpu", "cuda:x", "cpu:1", ""):
        with pytest.raises(UsageError, match="BINDSEARCH_DEVICE"):
            check_device(bad)


def test_windows_longer_than_a_day_are_refused():
    assert WindowSettings(seconds=86400, hop=2).seconds == 86400
    with pytest.raises(ValueError, match="at most 86400"):
        WindowSettings(seconds=1e300, hop=2)


def test_auto_tag_min_leaves_an_item_no_label_fits_untagged(tmp_path, tiny_space):
    image = bindsearch.Modality.IMAGE
    vectors = np.stack([tiny_space.embed(image, draw_image(tmp_path / f"{n}.png", n)) for n in range(3)])
    labels = LabelSet(tiny_space, ["dog", "car", "bird"])
    best = labels.best(bindsearch.Modality.IMAGE, vectors)
    assert labels.best(bindsearch.Modality.IMAGE, vectors, 0.0) == best
    top = [max(s.probability for s in row) for row in labels.scores(bindsearch.Modality.IMAGE, vectors)]
    cut = sorted(top)[1]  # the least fitting item falls short of it, the others reach it
    thresholded = labels.best(bindsearch.Modality.IMAGE, vectors, cut)
    assert [t is None for t in thresholded] == [p < cut for p in top] and thresholded.count(None) == 1

    for n in range(3):
        draw_image(tmp_path / "media" / f"{n}.png", n)
    lib = tmp_path / "lib"
    done = runner.invoke(app, ["index", str(tmp_path / "media"), "--library", str(lib), "--space",
                               str(TINY_SPACE_FILE), "--auto-tag", "dog,car,bird", "--auto-tag-min", "1"])
    assert done.exit_code == 0, done.output
    with bindsearch.open_library(lib) as library:
        assert library.info().tags == {}  # three random labels: none is certain
