"""The parts of binding against simple references: the loss, the schedule, recall, the measured loader settings,
the time-series loader, bound towers and their space file."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO

import bindsearch
from bindsearch.bind.inputs import channel_stats, series_shape
from bindsearch.bind.objective import chance_at, info_nce, learning_rate, recall_at
from bindsearch.bind.pairs import read_pairs
from bindsearch.bind.trainer import epoch_order, steps_per_epoch
from bindsearch.errors import MediaError, SpaceError, UsageError
from bindsearch.loaders.timeseries import SeriesSettings, load_series, orient_series, read_series, series_windows
from bindsearch.modality import Modality
from bindsearch.models.imagebind.bound_tower import NewTowerArch, build_new_tower, embed_items
from bindsearch.thumbnails.make import make_thumbnail

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"


def test_info_nce_matches_a_plain_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 8))
    y = rng.normal(size=(5, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    scale = 7.0
    logits = scale * x @ y.T

    def cross_entropy(rows: np.ndarray) -> float:
        return float(np.mean([np.log(np.exp(r).sum()) - r[i] for i, r in enumerate(rows)]))

    want = (cross_entropy(logits) + cross_entropy(logits.T)) / 2
    got = info_nce(torch.tensor(x), torch.tensor(y), torch.tensor(scale))
    assert float(got) == pytest.approx(want, rel=1e-9)
    with pytest.raises(ValueError, match="two \\(B, D\\) batches"):
        info_nce(torch.tensor(x), torch.tensor(y[:4]), torch.tensor(scale))


def test_learning_rate_warms_up_then_decays_to_zero():
    rates = [learning_rate(s, 100, 1e-3, 10) for s in range(101)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a < b for a, b in itertools.pairwise(rates[:10]))
    assert all(a >= b for a, b in itertools.pairwise(rates[10:]))
    assert rates[55] == pytest.approx(5e-4) and rates[100] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        learning_rate(101, 100, 1e-3, 10)


def test_recall_counts_ranks_as_a_loop_does():
    rng = np.random.default_rng(1)
    q, g = rng.normal(size=(30, 6)), rng.normal(size=(30, 6))
    scores = q @ g.T
    for k in (1, 5, 10):
        want = np.mean([sum(scores[i, j] >= scores[i, i] for j in range(30) if j != i) < k for i in range(30)])
        assert recall_at(q, g, (k,))[k] == pytest.approx(want)
    unit = g / np.linalg.norm(g, axis=1, keepdims=True)
    assert recall_at(unit, unit, (1,))[1] == 1.0
    assert chance_at(8) == {1: 1 / 8, 5: 5 / 8, 10: 1.0}


def test_epochs_and_batches_are_fixed_by_the_seed():
    assert np.array_equal(epoch_order(50, 3, 2), epoch_order(50, 3, 2))
    assert not np.array_equal(epoch_order(50, 3, 2), epoch_order(50, 3, 3))
    assert sorted(epoch_order(50, 3, 2)) == list(range(50))
    assert steps_per_epoch(100, 32) == 4 and steps_per_epoch(97, 32) == 3 and steps_per_epoch(98, 32) == 4


def test_series_settings_are_measured_on_the_data():
    assert series_shape([190, 200, 230], 8) == 200 and series_shape([3], 8) == 8 and series_shape([9000], 8) == 2000
    a = np.array([[1.0, 5.0], [3.0, 5.0]])
    b = np.array([[5.0, 5.0]])
    mean, std = channel_stats([a, b])
    assert mean == pytest.approx([3.0, 5.0]) and std == pytest.approx([math.sqrt(8 / 3), 1.0])


def test_series_windows_pad_and_spread_like_imu():
    values = np.arange(10, dtype=float)[:, None] * np.array([1.0, -1.0])
    short = series_windows(values, 16, 3)
    assert short.shape == (1, 2, 16) and short[0, 0, -1] == 9 and short[0, 1, 12] == -9
    long = series_windows(np.arange(40, dtype=float)[:, None], 16, 3)
    assert long.shape == (3, 1, 16) and [int(w[0, 0]) for w in long] == [0, 12, 24]
    assert orient_series(np.zeros((3, 50)), 3).shape == (50, 3)
    assert orient_series(np.zeros((50, 3)), None).shape == (50, 3)
    with pytest.raises(ValueError, match="needs 4 channels, found 3"):
        orient_series(np.zeros((50, 3)), 4)


def test_series_files_read_with_their_reasons(tmp_path):
    good = tmp_path / "a.csv"
    good.write_text("x,y\n1,2\n3,\n5,6\n")
    assert read_series(str(good)).tolist() == [[1, 2], [3, 4], [5, 6]]  # the gap interpolated
    np.save(tmp_path / "b.npy", np.ones((2, 30), np.float32))
    settings = SeriesSettings(channels=2, steps=8, mean=(1.0, 0.0), std=(1.0, 2.0))
    loaded = load_series(str(tmp_path / "b.npy"), settings)
    assert loaded.shape == (3, 2, 8) and float(loaded[0, 0, 0]) == 0.0 and float(loaded[0, 1, 0]) == 0.5
    for name, content, reason in [("c.csv", "x,y\n1,oops\n", "non-numeric value 'oops'"),
                                  ("d.npy", b"not numpy", "not a NumPy"), ("e.csv", "", "")]:
        bad = tmp_path / name
        bad.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(MediaError) as caught:
            read_series(str(bad))
        assert reason in caught.value.reason and "\n" not in caught.value.reason
    with pytest.raises(ValueError, match="mean needs 2 values"):
        SeriesSettings(channels=2, mean=(1.0,), std=(1.0,))


@pytest.mark.parametrize("kind, shape", [("timeseries", (2, 3, 64)), ("image1", (1, 224, 224)),
                                         ("audio", (2, 1, 128, 204))])
def test_new_towers_embed_their_input_to_unit_vectors(kind, shape):
    data = {"channels": 3, "steps": 64} if kind == "timeseries" else {}
    arch = NewTowerArch.sized(kind, "tiny", 16, **data)
    tower = build_new_tower("x", arch).eval()
    rows = torch.randn(2, *shape) if kind == "image1" else torch.randn(2 * shape[0], *shape[1:])
    counts = [shape[0], shape[0]] if kind != "image1" else None
    with torch.no_grad():
        out = embed_items(tower, rows, counts)
        assert out.shape == (2, 16) and torch.allclose(out.norm(dim=1), torch.ones(2))
        if counts:  # an item is the mean of its clips' outputs
            first = torch.nn.functional.normalize(tower(rows[: shape[0]]).mean(dim=0), dim=0)
            assert torch.allclose(out[0], first, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of kernel_size"):
        NewTowerArch("timeseries", 16, 64, 2, 2, steps=60)


def test_a_pairs_file_names_its_rows(tmp_path):
    (tmp_path / "p.csv").write_text("\ufeffImage, Other\na.png,b.csv\n\n sub/c.png , d.csv\n")
    pairs = read_pairs(tmp_path / "p.csv")
    assert [(p.row, Path(p.image).name, Path(p.other).name) for p in pairs] == [(2, "a.png", "b.csv"),
                                                                                (4, "c.png", "d.csv")]
    assert pairs[1].image == str(tmp_path / "sub" / "c.png")
    (tmp_path / "q.csv").write_text("image,other\na.png\n")
    with pytest.raises(UsageError, match="row 2: expected two paths"):
        read_pairs(tmp_path / "q.csv")
    with pytest.raises(UsageError, match="cannot read pairs file"):
        read_pairs(tmp_path / "missing.csv")


def test_a_bound_space_file_is_checked(tmp_path):
    base = json.loads(TINY_IMAGEBIND.read_text())
    tower = {"input": "timeseries", "checkpoint": "v.pt",
             "arch": {"design": "new", **NewTowerArch.sized("timeseries", "tiny", 32, channels=3, steps=64).to_dict()},
             "settings": {"channels": 3, "steps": 64}}
    space = bindsearch.load_space({"model": "bound", "base": base, "towers": {"vibration": tower}})
    assert space.modalities == frozenset(bindsearch.load_space(base).modalities) | {Modality("vibration")}
    assert space.input_kind("vibration") == "timeseries" and space.input_kind("audio") == "audio"
    assert space.naming.modality_of("/x/vibration/run.csv") is Modality("vibration")
    (tmp_path / "run.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    with pytest.raises(SpaceError, match="tower checkpoint not found"):
        space.embed("vibration", tmp_path / "run.csv")
    for towers, message in [({"Bad Name": tower}, "is not a modality name"),
                            ({"vibration": {**tower, "input": "smell"}}, "input must be one of"),
                            ({"audio": tower}, "has a audio tower already"),
                            ({"text": {**tower, "arch": {"design": "imagebind"}}}, "can be fine-tuned"),
                            ({}, 'needs "towers"')]:
        with pytest.raises(SpaceError, match=message):
            bindsearch.load_space({"model": "bound", "base": base, "towers": towers})


def test_a_series_thumbnail_is_a_plot(tmp_path):
    f = tmp_path / "run.csv"
    np.savetxt(f, np.random.default_rng(0).normal(size=(300, 5)), delimiter=",", header="a,b,c,d,e", comments="")
    picture = make_thumbnail(str(f), Modality("vibration"), kind="timeseries")
    from io import BytesIO

    from PIL import Image

    img = Image.open(BytesIO(picture.data)).convert("RGB")
    assert img.size == (320, 180)
    assert len(np.unique(np.asarray(img).reshape(-1, 3), axis=0)) > 10  # lines drawn, not a blank card
    with pytest.raises(ValueError, match="no thumbnail"):
        make_thumbnail(str(f), Modality("vibration"))
