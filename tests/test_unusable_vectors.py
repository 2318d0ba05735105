"""Vectors a model gives for input far outside what it knows (NaN, all zero) never reach a library or a user."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bindsearch.indexer.pipeline import embed_or_each
from helpers import IMAGEBIND_TINY, REPO, draw_image, write_imagebind_space, write_wav

import bindsearch
from bindsearch.errors import MediaError, UnusableEmbedding
from bindsearch.library.schema import STATUS_FAILED
from bindsearch.modality import Modality

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"
UNUSABLE = "the model gave no finite embedding: are its weights damaged, or the input beyond what it takes?"


@pytest.fixture(scope="module")
def imagebind() -> bindsearch.Space:
    return bindsearch.load_space(TINY_IMAGEBIND)


@pytest.fixture(scope="module")
def damaged_audio_space(tmp_path_factory) -> Path:
    """The fixture's checkpoint with NaN in its audio tower: every audio vector is NaN, the rest are sound.

    The loaders keep every input within what the towers take (float audio beyond full scale is divided
    by its peak), so damaged weights are how a real file meets a model that gives NaN."""
    import torch

    folder = tmp_path_factory.mktemp("damaged-audio")
    state = torch.load(IMAGEBIND_TINY / "model.pth", weights_only=True)
    damaged = {k: torch.full_like(v, float("nan")) if ".audio" in k and v.is_floating_point() else v
               for k, v in state.items()}
    torch.save(damaged, folder / "model.pth")
    return write_imagebind_space(folder / "space.json", str(folder / "model.pth"))


def write_loud_wav(path, seconds=3.0, loud=(0.0, None), scale=1e20, rate=16000):
    """Float samples, finite but huge from ``loud[0]`` s to ``loud[1]`` s (to the end with None): taken
    as they are, they overflow the filterbank and the model's output is NaN."""
    import soundfile

    rng = np.random.default_rng(0)
    samples = 0.1 * rng.standard_normal(int(seconds * rate))
    start, stop = int(loud[0] * rate), None if loud[1] is None else int(loud[1] * rate)
    samples[start:stop] = rng.standard_normal(samples[start:stop].size) * scale
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples.astype(np.float32), rate, subtype="FLOAT")
    return path


def mixed_folder(root):
    for i in range(3):
        draw_image(root / f"img{i}.png", seed=i)
    (root / "dog.txt").write_text("a dog running on the beach\n")
    (root / "car.txt").write_text("a red car parked on a street\n")
    write_wav(root / "tone.wav", seconds=2.0)
    return root


def ranking(lib, text="a dog"):
    return [(h.path, round(h.score, 5), round(h.calibrated, 5))
            for h in lib.search([bindsearch.QueryTerm.text(text)], k=20)]


def test_loud_wav_is_embedded_as_its_waveform_and_the_merged_ranking_stays_finite_and_right(tmp_path, imagebind):
    clean = mixed_folder(tmp_path / "clean")
    with bindsearch.open_library(tmp_path / "clean-lib", imagebind, create=True) as lib:
        lib.index([clean], workers=0)
        expected = {path: score for path, score, _ in ranking(lib)}

    folder = mixed_folder(tmp_path / "loud")
    write_loud_wav(folder / "loud.wav")
    with bindsearch.open_library(tmp_path / "lib", imagebind, create=True) as lib:
        report = lib.index([folder], workers=0)
        assert (report.added, report.failed) == (7, 0)
        got = ranking(lib)
        assert all(math.isfinite(score) and math.isfinite(calibrated) for _, score, calibrated in got)
        assert len(got) == 7
        # Every other item scores as it does in a library without the loud file.
        scores = {path.replace(str(folder), str(clean)): score for path, score, _ in got}
        assert {p: s for p, s in scores.items() if p in expected} == expected
        _, vectors = lib.stored_vectors(Modality.AUDIO)
        assert len(vectors) == 2 and np.isfinite(vectors).all()
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_audio_that_gives_nan_fails_alone_and_the_merged_ranking_stays_finite_and_right(tmp_path,
                                                                                     damaged_audio_space):
    space = bindsearch.load_space(damaged_audio_space)
    clean = tmp_path / "clean"
    mixed_folder(clean)
    (clean / "tone.wav").unlink()
    with bindsearch.open_library(tmp_path / "clean-lib", space, create=True) as lib:
        lib.index([clean], workers=0)
        expected = ranking(lib)

    folder = mixed_folder(tmp_path / "clean")  # the same files, and a sound beside them
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        report = lib.index([folder], workers=0)
        assert (report.added, report.failed) == (5, 1)
        assert [(e.path, e.reason) for e in report.errors] == [(str(folder / "tone.wav"), UNUSABLE)]
        assert [(f.path, f.reason) for f in lib.info().failed] == [(str(folder / "tone.wav"), UNUSABLE)]
        got = ranking(lib)
        assert all(math.isfinite(score) and math.isfinite(calibrated) for _, score, calibrated in got)
        assert got == expected
        assert lib.counts().get(Modality.AUDIO, 0) == 0


def test_a_batch_with_one_unusable_output_fails_only_that_input(tmp_path, imagebind):
    import torch

    encoder = imagebind.encoder("audio")
    files = [write_wav(tmp_path / "a.wav", freq=300), write_wav(tmp_path / "n.wav", freq=600),
             write_wav(tmp_path / "b.wav", freq=900)]
    prepared = [encoder.prepare(f) for f in files]
    prepared[1] = torch.full_like(prepared[1], float("nan"))  # an input no loader lets through
    with pytest.raises(UnusableEmbedding) as caught:
        encoder.embed_batch(prepared)
    assert caught.value.bad == (1,) and caught.value.reason.startswith("the model gave no finite embedding")
    out = embed_or_each(encoder.embed_batch, prepared)
    assert isinstance(out[1], UnusableEmbedding)
    for i in (0, 2):
        np.testing.assert_allclose(out[i], encoder.embed_batch([prepared[i]])[0], atol=1e-5)


def test_files_embedded_in_worker_processes_are_checked_too(tmp_path, damaged_audio_space):
    folder = mixed_folder(tmp_path / "media")
    with bindsearch.open_library(tmp_path / "lib", damaged_audio_space, create=True) as lib:
        report = lib.index([folder], workers=2)  # on a CPU the workers embed
        assert (report.added, report.failed) == (5, 1)
        assert report.errors[0].reason == UNUSABLE
        assert all(math.isfinite(c) for _, _, c in ranking(lib))


def test_a_long_file_whose_clips_give_nan_stores_no_window(tmp_path, damaged_audio_space):
    write_wav(tmp_path / "media" / "long.wav", seconds=20.0)
    with bindsearch.open_library(tmp_path / "lib", damaged_audio_space, create=True) as lib:
        report = lib.index([tmp_path / "media"], workers=0)
        assert (report.added, report.failed) == (0, 1)
        assert report.errors[0].reason == UNUSABLE
        assert lib.vector_index(Modality.AUDIO, windows=True).size == 0


def test_embedding_a_file_the_model_gives_nan_for_is_an_error_naming_it(tmp_path, damaged_audio_space):
    path = write_wav(tmp_path / "tone.wav")
    with pytest.raises(MediaError, match="tone.wav: the model gave no finite embedding"):
        bindsearch.load_space(damaged_audio_space).embed("audio", path)
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", "embed", "--audio", str(path), "--json",
                           "--space", str(damaged_audio_space)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == f"error: {path}: {UNUSABLE}"


def test_classify_reports_a_file_the_model_gives_nan_for_as_failed_in_strict_json(tmp_path, damaged_audio_space):
    tone = write_wav(tmp_path / "tone.wav")
    picture = draw_image(tmp_path / "a.png", seed=3)
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", "classify", str(tone), str(picture),
                           "--labels", "dog,rain", "--json", "--space", str(damaged_audio_space)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr
    results = json.loads(done.stdout, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert results[0]["error"] == UNUSABLE and results[0]["labels"] == []
    assert math.isclose(sum(s["probability"] for s in results[1]["labels"]), 1.0, rel_tol=1e-6)


def test_the_writer_never_stores_an_unusable_vector(library):
    with library.writer() as writer:
        writer.put("/nowhere/nan.png", Modality.IMAGE, 1, 1, "h1", np.full(library.dim, np.nan, np.float32))
        writer.put("/nowhere/zero.png", Modality.IMAGE, 1, 1, "h2", np.zeros(library.dim, np.float32))
        writer.commit()
    assert library.counts() == {}
    assert library.vector_index(Modality.IMAGE).size == 0
    assert {f.path for f in library.info().failed} == {"/nowhere/nan.png", "/nowhere/zero.png"}
    with library._engine.connect() as conn:
        from sqlalchemy import text

        assert {s for (s,) in conn.execute(text("SELECT status FROM items"))} == {STATUS_FAILED}
