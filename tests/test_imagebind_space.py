"""The ImageBind space end to end: media file -> our loaders -> our model -> the official vector."""

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    IMAGEBIND_TINY,
    draw_image,
    imagebind_fixture_missing,
    write_depth_png,
    write_imagebind_space,
    write_imu_csv,
    write_thermal_png,
    write_video,
    write_wav,
)

import bindsearch
from bindsearch.errors import SpaceError
from bindsearch.modality import Modality

pytestmark = pytest.mark.skipif(imagebind_fixture_missing() is not None, reason=imagebind_fixture_missing() or "")

THRESHOLD = {"audio": 0.995}  # every other modality: 0.9999


@pytest.fixture(scope="module")
def expected():
    from safetensors.torch import load_file

    return load_file(str(IMAGEBIND_TINY / "expected.safetensors"))


@pytest.fixture(scope="module")
def space_file(tmp_path_factory):
    return write_imagebind_space(tmp_path_factory.mktemp("space") / "imagebind-tiny.json")


# Every precision runs on every machine (emulated where the hardware lacks it): each must conform.
@pytest.fixture(scope="module", params=["fp32", "bf16", "fp16"])
def space(request, tmp_path_factory, monkeypatch_module):
    monkeypatch_module.delenv("BINDSEARCH_DTYPE", raising=False)
    path = tmp_path_factory.mktemp("space") / f"imagebind-tiny-{request.param}.json"
    space = bindsearch.load_space(write_imagebind_space(path, precision=request.param))
    assert space.precision == request.param
    return space


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _cases():
    if imagebind_fixture_missing():
        return []
    return json.loads((IMAGEBIND_TINY / "manifest.json").read_text())["cases"]


def _unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("case", [c for c in _cases() if "file" in c or "text" in c],
                         ids=lambda c: c.get("file") or f"text:{c['text'][:20]}")
def test_file_and_text_cases_give_the_official_vector(case, space, expected):
    value = IMAGEBIND_TINY / case["file"] if "file" in case else case["text"]
    ours = space.embed(case["modality"], value)
    official = _unit(expected[case["output"]].numpy()[0])
    assert ours.dtype == np.float32 and np.linalg.norm(ours) == pytest.approx(1.0, abs=1e-5)
    assert float(ours @ official) >= THRESHOLD.get(case["modality"], 0.9999)


@pytest.mark.parametrize("case", [c for c in _cases() if "file" not in c and "text" not in c],
                         ids=lambda c: c["modality"])
def test_tensor_cases_through_the_encoders(case, space, expected):
    x = expected[case["input"]]
    encoder = space.encoder(case["modality"])
    if case["modality"] == "imu":
        prepared = [row[None] for row in x]  # one 2000-step window per item
    else:
        prepared = list(x)
    ours = encoder.embed_batch(prepared)
    official = _unit(expected[case["output"]].numpy())
    cosines = np.sum(ours * official, axis=1)
    assert cosines.min() >= 0.9999


def test_text_tokens_equal_the_official_ids(expected):
    from bindsearch.preprocess.text import tokenize

    for case in _cases():
        if case["modality"] == "text":
            assert torch.equal(tokenize(case["text"]), expected[case["input"]])


def test_a_text_query_loads_only_the_text_tower(space_file):
    fresh = bindsearch.load_space(space_file)
    fresh.embed("text", "a dog barking")
    assert fresh._model.built_modalities == ("text",)
    fresh.embed("image", IMAGEBIND_TINY / "media" / "square.png")
    assert fresh._model.built_modalities == ("vision", "text")


def test_cli_embed_prints_the_expected_audio_vector(space_file, expected):
    result = subprocess.run(
        [sys.executable, "-m", "bindsearch.cli", "embed", "--space", str(space_file),
         "--audio", str(IMAGEBIND_TINY / "media" / "chirp_44k_stereo.wav"), "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["modality"], data["dim"]) == ("audio", 32)
    official = _unit(expected["audio/chirp_44k_stereo.wav/output"].numpy()[0])
    assert float(np.asarray(data["embedding"]) @ official) >= 0.995


def test_space_spec_round_trips_through_a_library(tmp_path, space):
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        pass
    with bindsearch.open_library(tmp_path / "lib") as lib:
        assert lib.space.fingerprint == space.fingerprint
        assert lib.space.spec == space.spec
        assert lib.space_name == "imagebind:model.pth"


def test_mixed_folder_fills_all_seven_modalities(tmp_path, space):
    media = tmp_path / "media"
    draw_image(media / "photos" / "a.png", seed=1)
    draw_image(media / "photos" / "b.jpg", seed=2)
    (media / "notes.txt").write_text("a dog barking in the park")
    write_wav(media / "sounds" / "tone.wav", seconds=1.5)
    write_wav(media / "sounds" / "stereo.wav", seconds=3.0, rate=44100, channels=2)
    write_video(media / "clips" / "with-sound.mp4", seconds=2.5, sound=True)
    write_video(media / "clips" / "silent.mp4", seconds=2.0, sound=False)
    write_depth_png(media / "depth" / "room.png")
    write_depth_png(media / "scene.depth.png", seed=3)
    write_thermal_png(media / "thermal" / "person.png")
    write_imu_csv(media / "imu" / "walk.csv", seconds=4.0)
    write_imu_csv(media / "imu" / "run.csv", seconds=35.0, seed=4, header=False)
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        report = lib.index([media])
        assert report.errors == []
        counts = lib.counts()
        assert counts == {
            Modality.IMAGE: 2, Modality.TEXT: 1, Modality.AUDIO: 3,  # two sound files and one soundtrack
            Modality.VIDEO: 2, Modality.DEPTH: 2, Modality.THERMAL: 1, Modality.IMU: 2,
        }
        assert report.skipped == 1  # the silent video has no soundtrack: nothing to embed, not a failure
        soundtrack = lib.search([bindsearch.QueryTerm.file("audio", media / "clips" / "with-sound.mp4")],
                                targets=["audio"], k=1)
        assert soundtrack[0].path == str(media / "clips" / "with-sound.mp4")
        assert soundtrack[0].score == pytest.approx(1.0, abs=1e-4)
        again = lib.index([media])
        assert (again.unchanged, again.skipped, again.embedded) == (13, 1, 0)


def test_checkpoint_url_is_downloaded_into_the_cache(tmp_path, monkeypatch):
    payload = (IMAGEBIND_TINY / "model.pth").read_bytes()

    class Server(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.delenv("BINDSEARCH_OFFLINE")
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/weights/tiny.pth"
        remote = bindsearch.load_space(write_imagebind_space(tmp_path / "remote.json", checkpoint=url))
        vector = remote.embed("text", "a dog barking")
    finally:
        httpd.shutdown()
    local = bindsearch.load_space(write_imagebind_space(tmp_path / "local.json"))
    np.testing.assert_allclose(vector, local.embed("text", "a dog barking"), atol=1e-6)
    assert remote.fingerprint == local.fingerprint  # same bytes, same identity, wherever they came from
    cached = Path(os.environ["BINDSEARCH_CACHE"]) / "imagebind" / "tiny.pth"
    assert cached.read_bytes() == payload


def test_builtin_name_offline_is_one_actionable_line():
    space = bindsearch.load_space("imagebind-huge")
    assert space.name == "imagebind-huge" and space.dim == 1024
    with pytest.raises(SpaceError) as info:
        space.embed("text", "a dog")
    message = str(info.value)
    assert "\n" not in message
    assert "BINDSEARCH_OFFLINE" in message and '"checkpoint": "/path/to/imagebind_huge.pth"' in message


def test_bad_imagebind_space_files(tmp_path):
    for content, fragment in [
        ('{"model": "imagebind"}', '"checkpoint"'),
        ('{"model": "imagebind", "checkpoint": "x.pth", "config": {"vision_width": 3}}', "vision_width"),
        ('{"model": "imagebind", "checkpoint": "x.pth", "depth": {"focal": 1}}', "focal"),
        ('{"model": "imagebind", "checkpoint": "x.pth", "colour": 1}', "unknown field"),
    ]:
        path = tmp_path / "s.json"
        path.write_text(content)
        with pytest.raises(SpaceError, match=fragment):
            bindsearch.load_space(path)
    (tmp_path / "s.json").write_text('{"model": "imagebind", "checkpoint": "missing.pth"}')
    with pytest.raises(SpaceError, match="checkpoint file not found"):
        bindsearch.load_space(tmp_path / "s.json").embed("text", "x")
