"""Zero-shot labels: prompts per modality, the space's logit scale, probabilities that sum to 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from bindsearch.cli.app import app
from helpers import IMAGEBIND_TINY, REPO, draw_image, imagebind_fixture_missing, write_imagebind_space
from typer.testing import CliRunner

import bindsearch
from bindsearch.classify import LabelSet, label_probabilities, parse_labels
from bindsearch.errors import UsageError
from bindsearch.modality import Modality

runner = CliRunner()
needs_fixture = pytest.mark.skipif(imagebind_fixture_missing() is not None, reason=imagebind_fixture_missing() or "")


def test_label_probabilities_are_a_softmax_of_scaled_cosines():
    sims = np.array([[0.1, 0.3, -0.2], [0.0, 0.0, 0.0]])
    probs = label_probabilities(sims, 10.0)
    reference = np.exp(sims * 10.0) / np.exp(sims * 10.0).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, reference, rtol=1e-12)
    # Large scales do not overflow.
    np.testing.assert_allclose(label_probabilities(np.array([[1.0, 0.0]]), 2000.0), [[1.0, 0.0]], atol=1e-12)
    with pytest.raises(ValueError):
        label_probabilities(np.zeros((2, 0)), 1.0)


def test_parse_labels():
    assert parse_labels("dog, car,bird,,dog") == ["dog", "car", "bird"]
    assert parse_labels("dog\ncat\n") == ["dog", "cat"]
    with pytest.raises(UsageError):
        parse_labels(" , ")


@needs_fixture
def test_classify_on_the_conformance_fixture_space(tmp_path):
    space = bindsearch.load_space(write_imagebind_space(tmp_path / "space.json"))
    manifest = json.loads((IMAGEBIND_TINY / "manifest.json").read_text())
    files = [IMAGEBIND_TINY / case["file"] for case in manifest["cases"]
             if case.get("file") and case["modality"] in ("image", "audio")]
    assert len(files) >= 6
    labels = ["dog", "car", "bird", "rain"]
    results = bindsearch.classify(files, labels, space=space)
    state = torch.load(IMAGEBIND_TINY / "model.pth", map_location="cpu", weights_only=True)
    text_scale = float(state["modality_postprocessors.text.1.log_logit_scale"].exp())
    for result in results:
        assert result.error is None
        probabilities = [s.probability for s in result.labels]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-9)
        assert probabilities == sorted(probabilities, reverse=True) and result.label == result.labels[0].label
        # The probabilities are the softmax of cosine x logit scale, with the prompts of the file's modality.
        vector = space.embed(result.modality, result.path)
        template = "a photo of a {}." if result.modality is Modality.IMAGE else "the sound of a {}."
        prompts = space.encoder("text").embed([template.format(label) for label in labels])
        scale = text_scale * (20.0 if result.modality is Modality.AUDIO else 1.0)
        expected = label_probabilities((prompts @ vector)[None, :], scale)[0]
        got = {s.label: s.probability for s in result.labels}
        np.testing.assert_allclose([got[label] for label in labels], expected, rtol=1e-5, atol=1e-9)
    assert space.logit_scale("audio") == pytest.approx(text_scale * 20.0, rel=1e-6)
    assert space.logit_scale("image") == pytest.approx(text_scale, rel=1e-6)


def test_templates_can_be_overridden_and_ensembled():
    space = bindsearch.load_space(REPO / "examples" / "tiny-imagebind.json")
    labels = LabelSet(space, ["dog", "cat"], {"image": ["a photo of a {}.", "a drawing of a {}."]})
    assert labels.prompts(Modality.IMAGE) == [["a photo of a dog.", "a drawing of a dog."],
                                              ["a photo of a cat.", "a drawing of a cat."]]
    text = space.encoder("text").embed(["a photo of a dog.", "a drawing of a dog."])
    mean = text.mean(axis=0)
    np.testing.assert_allclose(labels.vectors(Modality.IMAGE)[0], mean / np.linalg.norm(mean), atol=1e-6)
    with pytest.raises(UsageError, match="needs {}"):
        LabelSet(space, ["dog"], {"audio": "no placeholder"})


def test_classify_command_and_auto_tag(tmp_path):
    space_file = REPO / "examples" / "tiny-imagebind.json"
    media = tmp_path / "media"
    draw_image(media / "a.png", seed=1)
    draw_image(media / "b.png", seed=2)
    (media / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = runner.invoke(app, ["classify", str(media / "a.png"), str(media / "broken.png"), "--labels",
                                 "dog,car,bird", "--space", str(space_file), "--json"], catch_exceptions=False)
    assert result.exit_code == 3, result.output
    rows = json.loads(result.stdout)
    assert rows[0]["label"] in ("dog", "car", "bird") and rows[0]["error"] is None
    assert sum(s["probability"] for s in rows[0]["labels"]) == pytest.approx(1.0, abs=1e-6)
    assert rows[1]["labels"] == [] and "PNG" in rows[1]["error"]
    (media / "broken.png").unlink()
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("dog\ncar\nbird\n")
    lib_path = tmp_path / "lib"
    indexed = runner.invoke(app, ["index", str(media), "--space", str(space_file), "--library", str(lib_path),
                                  "--auto-tag", "dog,car,bird", "--json"], catch_exceptions=False)
    assert indexed.exit_code == 0, indexed.output
    space = bindsearch.load_space(space_file)
    expected = {p.name: r.label for p, r in
                zip(sorted(media.iterdir()), bindsearch.classify(sorted(media.iterdir()), ["dog", "car", "bird"],
                                                                space=space))}
    with bindsearch.open_library(lib_path) as lib:
        tags = {t.path.rsplit("/", 1)[-1]: t.tags for t in lib.tag([media])}
    assert tags == {name: [label] for name, label in expected.items()}
    by_file = runner.invoke(app, ["classify", str(media / "b.png"), "--labels-file", str(labels_file),
                                  "--library", str(lib_path), "--top", "2"], catch_exceptions=False)
    assert by_file.exit_code == 0 and expected["b.png"] in by_file.stdout
    none = runner.invoke(app, ["classify", str(media / "b.png"), "--library", str(lib_path)])
    assert none.exit_code == 2 and "--labels" in none.output
