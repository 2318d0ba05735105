"""Few-shot labels: prototypes and a logistic probe learned from example folders, on tiny random models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bindsearch.cli.app import app
from helpers import REPO, TINY_SPACE_FILE, write_wav
from PIL import Image, ImageDraw
from typer.testing import CliRunner

import bindsearch
from bindsearch.classify import label_probabilities
from bindsearch.errors import UsageError
from bindsearch.fewshot import (
    ExampleLabels,
    class_prototypes,
    classify_examples,
    fit_logistic,
    logistic_loss,
    predict_proba,
    read_examples,
)
from bindsearch.modality import Modality

runner = CliRunner()
TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"

# Three labels a random vision tower tells apart: the overall colour of a picture survives random weights.
COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


def draw_coloured(path: Path, colour: tuple[int, int, int], seed: int) -> Path:
    """A picture of mostly ``colour``: per-pixel noise and two small shapes of random colour, placed at random."""
    rng = np.random.default_rng(seed)
    pixels = np.array(colour)[None, None, :] + rng.normal(0, 25, (80, 96, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(2):
        x0, y0 = int(rng.integers(0, 80)), int(rng.integers(0, 60))
        draw.ellipse([x0, y0, x0 + int(rng.integers(5, 20)), y0 + int(rng.integers(5, 20))],
                     fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def make_examples(root: Path, per_label: int = 4, held_out: int = 8) -> tuple[Path, list[tuple[Path, str]]]:
    """An examples folder (one sub-folder per colour) and held-out pictures with their true labels."""
    held = []
    for k, (label, colour) in enumerate(COLOURS.items()):
        for i in range(per_label):
            draw_coloured(root / "examples" / label / f"{i}.png", colour, 1000 * k + i)
        for i in range(held_out):
            held.append((draw_coloured(root / "held" / f"{label}-{i}.png", colour, 1000 * k + 500 + i), label))
    return root / "examples", held


# -- the numeric parts, against simple references --------------------------------------


def test_class_prototypes_are_the_normalised_means():
    vectors = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0], [3.0, 4.0, 0.0]])
    prototypes = class_prototypes(vectors, np.array([0, 0, 1, 0]), 2)
    mean = np.array([4.0, 5.0, 0.0]) / 3
    np.testing.assert_allclose(prototypes, [mean / np.linalg.norm(mean), [0, 0, 1]], atol=1e-6)
    with pytest.raises(ValueError, match="every one of the 3 classes"):
        class_prototypes(vectors, np.array([0, 0, 1, 0]), 3)
    with pytest.raises(ValueError, match="targets"):
        class_prototypes(vectors, np.array([0, 1]), 2)


def test_logistic_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    vectors, targets = rng.normal(size=(7, 5)), np.array([0, 1, 2, 0, 1, 2, 2])
    weights, bias = rng.normal(size=(5, 3)), rng.normal(size=3)
    _, grad_w, grad_b = logistic_loss(weights, bias, vectors, targets, 0.1)
    step = 1e-6
    for index in np.ndindex(weights.shape):
        up, down = weights.copy(), weights.copy()
        up[index] += step
        down[index] -= step
        numeric = (logistic_loss(up, bias, vectors, targets, 0.1)[0]
                   - logistic_loss(down, bias, vectors, targets, 0.1)[0]) / (2 * step)
        assert grad_w[index] == pytest.approx(numeric, abs=1e-6)
    for j in range(3):
        up, down = bias.copy(), bias.copy()
        up[j] += step
        down[j] -= step
        numeric = (logistic_loss(weights, up, vectors, targets, 0.1)[0]
                   - logistic_loss(weights, down, vectors, targets, 0.1)[0]) / (2 * step)
        assert grad_b[j] == pytest.approx(numeric, abs=1e-6)


def test_fit_logistic_separates_separable_data_and_converges():
    rng = np.random.default_rng(1)
    centres = np.eye(4)[:3] * 3
    targets = np.repeat(np.arange(3), 10)
    vectors = centres[targets] + rng.normal(scale=0.3, size=(30, 4))
    weights, bias = fit_logistic(vectors, targets, 3, l2=1e-2)
    probabilities = predict_proba(weights, bias, vectors)
    assert (probabilities.argmax(axis=1) == targets).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
    _, grad_w, grad_b = logistic_loss(weights, bias, vectors, targets, 1e-2)
    assert np.abs(grad_w).max() < 1e-6 and np.abs(grad_b).max() < 1e-6  # at the minimum
    again = fit_logistic(vectors, targets, 3, l2=1e-2)
    assert np.array_equal(again[0], weights) and np.array_equal(again[1], bias)  # deterministic
    with pytest.raises(ValueError, match="shape"):
        predict_proba(weights, bias, vectors[:, :3])
    with pytest.raises(ValueError, match="l2"):
        fit_logistic(vectors, targets, 3, l2=0.0)


# -- example folders --------------------------------------------------------------------


def test_read_examples_keeps_media_files_of_visible_label_folders(tmp_path):
    root = tmp_path / "ex"
    draw_coloured(root / "red" / "a.png", COLOURS["red"], 1)
    (root / "red" / "notes.bin").write_bytes(b"\0")  # no modality: left out
    (root / "red" / ".hidden.png").write_bytes(b"")
    (root / "blue").mkdir()
    (root / "blue" / "caption.txt").write_text("a blue square")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.png").write_bytes(b"")
    (root / "README.txt").write_text("not a label")
    assert read_examples(root) == {"blue": [root / "blue" / "caption.txt"], "red": [root / "red" / "a.png"]}


@pytest.mark.parametrize("case, message", [
    ("missing", "no such examples folder"),
    ("file", "is not a folder"),
    ("one label", "needs at least 2 label folders"),
    ("empty label", "label folder"),
])
def test_read_examples_refuses_unusable_folders(tmp_path, case, message):
    root = _bad_examples(tmp_path, case)
    with pytest.raises(UsageError, match=message) as caught:
        read_examples(root)
    assert str(root.name) in str(caught.value) and "\n" not in str(caught.value)


def _bad_examples(tmp_path: Path, case: str) -> Path:
    root = tmp_path / "examples"
    if case == "file":
        root.write_text("not a folder")
    elif case == "one label":
        draw_coloured(root / "red" / "a.png", COLOURS["red"], 1)
    elif case == "empty label":
        draw_coloured(root / "red" / "a.png", COLOURS["red"], 1)
        (root / "empty").mkdir()
        (root / "empty" / "data.bin").write_bytes(b"\0")
    return root


def test_examples_that_cannot_be_embedded_are_named(tmp_path, tiny_space):
    root, _ = make_examples(tmp_path, per_label=1, held_out=0)
    (root / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(UsageError, match=r"cannot read example .*broken\.png: .*PNG"):
        ExampleLabels(tiny_space, root)
    (root / "red" / "broken.png").unlink()
    write_wav(root / "blue" / "tone.wav")
    with pytest.raises(UsageError, match=r"cannot embed the audio example .*tone\.wav"):
        ExampleLabels(tiny_space, root)
    with pytest.raises(UsageError, match="unknown few-shot method"):
        ExampleLabels(tiny_space, root, "svm")


# -- labels learned from examples -------------------------------------------------------


@pytest.mark.parametrize("method", ["prototype", "logistic"])
def test_held_out_pictures_get_their_label(tmp_path, tiny_space, method):
    root, held = make_examples(tmp_path)
    labels = ExampleLabels(tiny_space, root, method)
    assert labels.labels == ["blue", "green", "red"]
    results = classify_examples([path for path, _ in held], labels)
    accuracy = np.mean([r.label == truth for r, (_, truth) in zip(results, held)])
    print(f"{method}: held-out accuracy {accuracy:.3f} on {len(held)} files (chance 0.333)")
    assert accuracy >= 0.7
    for result in results:
        probabilities = [s.probability for s in result.labels]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-9) and probabilities == sorted(probabilities)[::-1]
    vectors = np.stack([tiny_space.embed(Modality.IMAGE, path) for path, _ in held])
    assert labels.best(Modality.IMAGE, vectors) == [r.label for r in results]
    top = [r.labels[0].probability for r in results]
    cut = sorted(top)[len(top) // 2]
    assert [b is None for b in labels.best(Modality.IMAGE, vectors, cut)] == [p < cut for p in top]
    assert labels.best(Modality.IMAGE, vectors[:0]) == []


def test_prototype_probabilities_are_scaled_cosines_to_the_mean_example(tmp_path, tiny_space):
    root, held = make_examples(tmp_path, per_label=3, held_out=1)
    labels = ExampleLabels(tiny_space, root)
    examples = read_examples(root)
    means = []
    for label in labels.labels:
        mean = np.mean([tiny_space.embed(Modality.IMAGE, p) for p in examples[label]], axis=0)
        means.append(mean / np.linalg.norm(mean))
    vector = tiny_space.embed(Modality.IMAGE, held[0][0])
    cosines = np.stack(means) @ vector
    expected = label_probabilities(cosines[None, :], tiny_space.logit_scale(Modality.IMAGE))[0]
    got = {s.label: s for s in labels.scores(Modality.IMAGE, vector[None, :])[0]}
    np.testing.assert_allclose([got[label].score for label in labels.labels], cosines, atol=1e-5)
    np.testing.assert_allclose([got[label].probability for label in labels.labels], expected, atol=1e-5)
    with pytest.raises(ValueError, match="vectors"):
        labels.scores(Modality.IMAGE, vector[None, :5])


def test_a_label_with_examples_of_the_files_modality_is_represented_by_those_alone(tmp_path):
    space = bindsearch.load_space(TINY_IMAGEBIND)
    root = tmp_path / "examples"
    write_wav(root / "dog" / "bark.wav", freq=300)
    write_wav(root / "dog" / "growl.wav", freq=150)
    draw_coloured(root / "dog" / "dog.png", COLOURS["red"], 1)
    draw_coloured(root / "bird" / "bird.png", COLOURS["blue"], 2)
    labels = ExampleLabels(space, root)
    audio = space.encoder("audio").embed([root / "dog" / "bark.wav", root / "dog" / "growl.wav"])
    images = space.encoder("image").embed([root / "dog" / "dog.png", root / "bird" / "bird.png"])
    prototypes = labels._model(Modality.AUDIO)[0]
    dog = audio.mean(axis=0)
    np.testing.assert_allclose(prototypes[labels.labels.index("dog")], dog / np.linalg.norm(dog), atol=1e-5)
    np.testing.assert_allclose(prototypes[labels.labels.index("bird")], images[1], atol=1e-5)  # no bird sound
    both = (audio.sum(axis=0) + images[0]) / 3  # for a text, say: no label has text examples
    np.testing.assert_allclose(labels._model(Modality.TEXT)[0][labels.labels.index("dog")],
                               both / np.linalg.norm(both), atol=1e-5)


def test_one_unreadable_file_gets_its_reason_and_the_others_their_labels(tmp_path, tiny_space):
    root, held = make_examples(tmp_path, per_label=2, held_out=1)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    results = classify_examples([held[0][0], broken, ("text", "a red picture")], root, space=tiny_space,
                                method="logistic")
    assert results[0].error is None and results[0].label == held[0][1]
    assert results[1].labels == [] and "PNG" in (results[1].error or "")
    assert results[2].modality is Modality.TEXT and results[2].label in COLOURS
    with pytest.raises(UsageError, match="cannot tell the modality"):
        classify_examples([tmp_path / "x.bin"], root, space=tiny_space)


# -- the commands -----------------------------------------------------------------------


def test_classify_examples_command(tmp_path):
    root, held = make_examples(tmp_path, per_label=3, held_out=1)
    files = [str(path) for path, _ in held]
    text = runner.invoke(app, ["classify", *files, "--examples", str(root), "--space", str(TINY_SPACE_FILE),
                               "--top", "2"], catch_exceptions=False)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert len(lines) == 1 + len(held)
    for line, (path, truth) in zip(lines[1:], held):
        assert path.name in line and line.split("\t")[1] == truth
    shown = runner.invoke(app, ["classify", *files, "--examples", str(root), "--probe", "logistic", "--space",
                                str(TINY_SPACE_FILE), "--json"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.stdout)
    assert [row["label"] for row in rows] == [truth for _, truth in held]
    assert all(row["error"] is None and len(row["labels"]) == 3 for row in rows)
    assert sum(s["probability"] for s in rows[0]["labels"]) == pytest.approx(1.0, abs=1e-6)


def test_index_auto_tag_examples_tags_new_items(tmp_path, tiny_space):
    root, held = make_examples(tmp_path, per_label=3, held_out=2)
    lib_path = tmp_path / "lib"
    done = runner.invoke(app, ["index", str(tmp_path / "held"), "--space", str(TINY_SPACE_FILE), "--library",
                               str(lib_path), "--auto-tag-examples", str(root), "--json"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["added"] == len(held)
    labels = ExampleLabels(tiny_space, root)
    vectors = np.stack([tiny_space.embed(Modality.IMAGE, path) for path, _ in held])
    expected = {path.name: [label] for (path, _), label in zip(held, labels.best(Modality.IMAGE, vectors))}
    with bindsearch.open_library(lib_path) as lib:
        tags = {t.path.rsplit("/", 1)[-1]: t.tags for t in lib.tag([tmp_path / "held"])}
    assert tags == expected
    assert sorted(tag for (tag,) in tags.values()) == sorted(truth for _, truth in held)
    certain = runner.invoke(app, ["index", str(tmp_path / "held"), "--space", str(TINY_SPACE_FILE), "--library",
                                  str(tmp_path / "lib2"), "--auto-tag-examples", str(root), "--auto-tag-min", "1"],
                            catch_exceptions=False)
    assert certain.exit_code == 0, certain.output
    with bindsearch.open_library(tmp_path / "lib2") as lib:
        assert lib.info().tags == {}  # no probability reaches 1


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], result.stderr


@pytest.mark.parametrize("case", ["missing", "file", "one label", "empty label"])
def test_bad_examples_folders_are_one_line_and_exit_2(tmp_path, case):
    draw_coloured(tmp_path / "a.png", COLOURS["red"], 1)
    root = _bad_examples(tmp_path, case)
    for args in (["classify", str(tmp_path / "a.png"), "--examples", str(root)],
                 ["index", str(tmp_path / "a.png"), "--auto-tag-examples", str(root), "--library",
                  str(tmp_path / "lib")]):
        _one_line_error(runner.invoke(app, [*args, "--space", str(TINY_SPACE_FILE)]), "examples")
    assert not (tmp_path / "lib").exists()  # refused before the library was made


def test_bad_few_shot_arguments_are_one_line_and_exit_2(tmp_path):
    root, held = make_examples(tmp_path, per_label=1, held_out=1)
    image, space = str(held[0][0]), ["--space", str(TINY_SPACE_FILE)]
    _one_line_error(runner.invoke(app, ["classify", image, "--examples", str(root), "--labels", "a,b", *space]),
                    "one of --labels, --labels-file and --examples")
    _one_line_error(runner.invoke(app, ["classify", image, "--examples", str(root), "--probe", "svm", *space]),
                    "--probe")
    _one_line_error(runner.invoke(app, ["classify", image, "--labels", "a,b", "--probe", "logistic", *space]),
                    "--probe goes with --examples")
    _one_line_error(runner.invoke(app, ["index", image, "--auto-tag", "a,b", "--auto-tag-examples", str(root),
                                        "--library", str(tmp_path / "lib"), *space]), "not both")
    (root / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    for args in (["classify", image, "--examples", str(root)],
                 ["index", image, "--auto-tag-examples", str(root), "--library", str(tmp_path / "lib")]):
        _one_line_error(runner.invoke(app, [*args, *space]), "broken.png")
