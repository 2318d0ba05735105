"""Spaces: names, space files, determinism, checkpoints and what happens without a network."""

import http.server
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import draw_image, write_space

import bindsearch
from bindsearch.errors import MediaError, SpaceError, UsageError
from bindsearch.modality import Modality
from bindsearch.spaces.openclip import OpenClipSpace


def test_builtin_name_parses_without_loading_anything():
    space = bindsearch.load_space("openclip:ViT-B-32/laion2b_s34b_b79k")
    assert isinstance(space, OpenClipSpace)
    assert space.spec == {"model": "openclip", "arch": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"}
    assert space.dim == 512
    assert space._model is None


@pytest.mark.parametrize("name", ["openclip:ViT-B-32", "openclip:/tag", "nonsense-space"])
def test_bad_names_are_refused_with_the_forms_we_accept(name):
    with pytest.raises(SpaceError, match="openclip:ARCH/TAG"):
        bindsearch.load_space(name)


def test_unknown_architecture_suggests_close_names():
    with pytest.raises(SpaceError, match="unknown OpenCLIP architecture 'ViT-B-3'.*ViT-B-32"):
        _ = bindsearch.load_space("openclip:ViT-B-3/foo").dim


def test_unknown_tag_lists_known_tags(tmp_path):
    space = bindsearch.load_space("openclip:ViT-B-32/no-such-tag")
    with pytest.raises(SpaceError, match="neither a checkpoint file nor an OpenCLIP tag.*laion2b_s34b_b79k"):
        space.embed("text", "hello")


def test_offline_without_cached_weights_is_one_actionable_error():
    # HF_HUB_OFFLINE is set for the tests: nothing is fetched.
    space = bindsearch.load_space("openclip:ViT-B-32/laion2b_s34b_b79k")
    with pytest.raises(SpaceError) as info:
        space.embed("text", "a dog")
    message = str(info.value)
    assert "\n" not in message
    assert "HF_HUB_OFFLINE" in message
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/resolve/main/open_clip_model.safetensors" in message
    assert '"pretrained": "/path/to/open_clip_model.safetensors"' in message


def test_unreachable_hub_fails_at_once_with_one_line(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    space = bindsearch.load_space("openclip:ViT-B-32/laion2b_s34b_b79k")
    with pytest.raises(SpaceError) as info:
        space.embed("text", "a dog")
    message = str(info.value)
    assert message.startswith("cannot download the weights of openclip:ViT-B-32/laion2b_s34b_b79k from "
                              "http://127.0.0.1:9/laion/CLIP-ViT-B-32-laion2B-s34B-b79K/resolve/main/")
    assert "partial" not in message and "\n" not in message


def test_tag_download_tries_safetensors_then_bin_into_the_cache(monkeypatch, tmp_path):
    served = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            served.append(self.path)
            if self.path.endswith(".safetensors"):
                self.send_error(404)
                return
            body = b"not really weights"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{httpd.server_address[1]}")
    try:
        space = bindsearch.load_space("openclip:ViT-B-32/laion2b_s34b_b79k")
        with pytest.raises(SpaceError, match="cannot load checkpoint .*open_clip_pytorch_model.bin"):
            space.embed("text", "a dog")
    finally:
        httpd.shutdown()
    repo = "/laion/CLIP-ViT-B-32-laion2B-s34B-b79K/resolve/main/"
    assert served == [repo + "open_clip_model.safetensors", repo + "open_clip_pytorch_model.bin"]
    cached = Path(os.environ["BINDSEARCH_CACHE"]) / "openclip" / "laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    assert (cached / "open_clip_pytorch_model.bin").read_bytes() == b"not really weights"


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"model": "nope"}', '"model" must be one of'),
        ('{"model": "openclip", "pretrained": null}', '"arch"'),
        ('{"model": "openclip", "arch": "ViT-B-32"}', '"pretrained"'),
        ('{"model": "openclip", "arch": "ViT-B-32", "pretrained": null, "colour": 1}', "unknown field"),
        ('{"model": "openclip", "arch": {"embed_dim": 8}, "pretrained": null}', "vision_cfg"),
        ('{"model": "openclip", "arch": {"embed_dim": 8, "vision_cfg": {}, "text_cfg": {}}, "pretrained": "tag"}',
         "needs a named architecture"),
    ],
)
def test_bad_space_files_are_refused(tmp_path, content, message):
    path = tmp_path / "space.json"
    path.write_text(content)
    with pytest.raises(SpaceError, match=message):
        bindsearch.load_space(path)


def test_missing_space_file():
    with pytest.raises(SpaceError, match="space file not found"):
        bindsearch.load_space("does/not/exist.json")


def test_random_space_is_deterministic_and_warns(tmp_path, tiny_space_file, caplog):
    image = draw_image(tmp_path / "x.png", seed=3)
    first = bindsearch.load_space(tiny_space_file)
    second = bindsearch.load_space(tiny_space_file)
    with caplog.at_level(logging.WARNING, logger="bindsearch"):
        a = first.embed("image", image)
    assert "RANDOM weights" in caplog.text
    np.testing.assert_array_equal(a, second.embed("image", image))
    np.testing.assert_array_equal(first.embed("text", "a cat"), second.embed("text", "a cat"))
    assert first.fingerprint == second.fingerprint


def test_seed_changes_vectors_and_fingerprint(tmp_path, tiny_space):
    other = bindsearch.load_space(write_space(tmp_path / "s.json", seed=1))
    assert other.fingerprint != tiny_space.fingerprint
    assert not np.allclose(other.embed("text", "a cat"), tiny_space.embed("text", "a cat"))


def test_vectors_are_unit_float32_of_the_space_dim(tiny_space, media):
    vectors = tiny_space.encoder("image").embed([media / "a.png", media / "b.jpg"])
    assert vectors.shape == (2, tiny_space.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    text = tiny_space.encoder("text").embed(["a dog", "", "x " * 500])
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, rtol=1e-5)


def test_text_file_and_string_embed_alike(tiny_space, tmp_path):
    note = tmp_path / "n.txt"
    note.write_text("a dog on the beach")
    np.testing.assert_allclose(
        tiny_space.embed("text", Path(note)), tiny_space.embed("text", "a dog on the beach"), atol=1e-6
    )


def test_space_without_an_encoder_for_a_modality(tiny_space):
    with pytest.raises(UsageError, match="cannot embed audio"):
        tiny_space.encoder(Modality.AUDIO)


def test_missing_query_file_is_a_media_error(tiny_space):
    with pytest.raises(MediaError, match="nope.png"):
        tiny_space.embed("image", "nope.png")


def test_local_checkpoint_relative_to_space_file(tmp_path, tiny_space, media):
    # Save the tiny model's weights, then point a space file at them by a relative path.
    weights = tmp_path / "weights" / "tiny.pt"
    weights.parent.mkdir()
    torch.save(tiny_space.model().state_dict(), weights)
    spec = json.loads(write_space(tmp_path / "tmp.json").read_text())
    spec["pretrained"] = "weights/tiny.pt"
    spec.pop("seed")
    (tmp_path / "space.json").write_text(json.dumps(spec))
    space = bindsearch.load_space(tmp_path / "space.json")
    assert space.spec["pretrained"] == str(weights.resolve())
    np.testing.assert_allclose(
        space.embed("image", media / "a.png"), tiny_space.embed("image", media / "a.png"), atol=1e-5
    )
    assert space.fingerprint != tiny_space.fingerprint
    assert space.fingerprint_parts()["checkpoint"].startswith("file:")


def test_missing_or_bad_checkpoint(tmp_path):
    spec = json.loads(write_space(tmp_path / "tmp.json").read_text())
    spec["pretrained"] = "missing.pt"
    (tmp_path / "a.json").write_text(json.dumps(spec))
    with pytest.raises(SpaceError, match="checkpoint file not found"):
        bindsearch.load_space(tmp_path / "a.json").embed("text", "x")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    spec["pretrained"] = "garbage.pt"
    (tmp_path / "b.json").write_text(json.dumps(spec))
    with pytest.raises(SpaceError, match="cannot load checkpoint"):
        bindsearch.load_space(tmp_path / "b.json").embed("text", "x")


def test_bindsearch_embed_function(tiny_space_file):
    v = bindsearch.embed("text", "hello", space=tiny_space_file)
    assert v.shape == (64,)


TINY_IMAGEBIND = Path(__file__).resolve().parent.parent / "examples" / "tiny-imagebind.json"


def test_random_imagebind_space_is_deterministic_whatever_the_tower_order(caplog):
    first, second = bindsearch.load_space(TINY_IMAGEBIND), bindsearch.load_space(TINY_IMAGEBIND)
    with caplog.at_level(logging.WARNING, logger="bindsearch"):
        text = first.embed("text", "a dog")
    assert "RANDOM weights" in caplog.text
    image = first.embed("image", TINY_IMAGEBIND.parent / "media" / "cat.jpg")
    # The other space builds its towers in the opposite order.
    np.testing.assert_array_equal(second.embed("image", TINY_IMAGEBIND.parent / "media" / "cat.jpg"), image)
    np.testing.assert_array_equal(second.embed("text", "a dog"), text)
    assert first.fingerprint == second.fingerprint
    assert first.name == "imagebind:random(seed=0)" and first.spec["seed"] == 0


def test_random_imagebind_seed_matters(tmp_path):
    spec = json.loads(TINY_IMAGEBIND.read_text())
    spec["seed"] = 5
    (tmp_path / "s.json").write_text(json.dumps(spec))
    other = bindsearch.load_space(tmp_path / "s.json")
    base = bindsearch.load_space(TINY_IMAGEBIND)
    assert other.fingerprint != base.fingerprint
    assert not np.allclose(other.embed("text", "a dog"), base.embed("text", "a dog"))
