"""Large JPEGs decode reduced (DCT scaling) to twice the model's input size, within a tolerance of a full decode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import IMAGEBIND_TINY, imagebind_fixture_missing
from PIL import Image

from bindsearch.loaders.image import load_image, reduced_decode_size
from bindsearch.preprocess.files import REDUCED_DECODE_SIDE, image_file_to_input
from bindsearch.preprocess.image import image_to_tensor

REPO = Path(__file__).resolve().parent.parent


def test_the_size_asked_for_keeps_the_shorter_side() -> None:
    assert reduced_decode_size(4000, 3000, 448) == (598, 448)
    assert reduced_decode_size(3000, 4000, 448) == (448, 598)
    assert reduced_decode_size(300, 200, 448) == (300, 200)  # never up


def _detailed_photo(path: Path, size: tuple[int, int], orientation: int | None = None) -> Path:
    """An example photo enlarged, with noise and fine stripes: detail a reduced decode could lose."""
    rng = np.random.default_rng(0)
    image = Image.open(REPO / "examples" / "media" / "astronaut.jpg").convert("RGB").resize(size, Image.BICUBIC)
    pixels = np.asarray(image).astype(np.float32) + rng.normal(0, 12, (size[1], size[0], 3))
    rows, cols = np.mgrid[0:size[1], 0:size[0]]
    pixels += (20 * np.sin(cols / 3.0) * (rows % 200 < 100))[..., None]
    out = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    out.save(path, quality=90, exif=exif)
    return path


def test_a_large_jpeg_decodes_reduced_and_upright(tmp_path: Path) -> None:
    photo = _detailed_photo(tmp_path / "photo.jpg", (2000, 1500))
    assert load_image(str(photo)).size == (2000, 1500)
    assert load_image(str(photo), shorter_side_at_least=448).size == (1000, 750)  # 1/2: 1/4 would be under 448
    turned = _detailed_photo(tmp_path / "turned.jpg", (2000, 1500), orientation=6)
    assert load_image(str(turned), shorter_side_at_least=448).size == (750, 1000)
    Image.open(photo).save(tmp_path / "photo.png")
    assert load_image(str(tmp_path / "photo.png"), shorter_side_at_least=448).size == (2000, 1500)  # JPEG only


@pytest.mark.skipif(imagebind_fixture_missing() is not None, reason=imagebind_fixture_missing() or "")
def test_the_reduced_decode_stays_within_tolerance_of_the_full_one(tmp_path: Path) -> None:
    from bindsearch.models.imagebind import ImageBindConfig, load_imagebind

    config = ImageBindConfig.from_dict(json.loads((IMAGEBIND_TINY / "config.json").read_text()))
    model = load_imagebind(IMAGEBIND_TINY / "model.pth", config, ["vision"])
    photo = _detailed_photo(tmp_path / "photo.jpg", (2400, 1800))
    reduced = image_file_to_input(str(photo))
    full = image_to_tensor(load_image(str(photo)))
    assert load_image(str(photo), shorter_side_at_least=REDUCED_DECODE_SIDE).size == (600, 450)  # 1/4
    cosine = torch.nn.functional.cosine_similarity(reduced.flatten().double(), full.flatten().double(), dim=0)
    assert 0.9999 <= cosine.item() < 1.0  # reduced indeed, and close
    vectors = model.embed("image", torch.stack([reduced, full]))
    assert torch.nn.functional.cosine_similarity(vectors[:1], vectors[1:]).item() >= 0.99999


@pytest.mark.skipif(imagebind_fixture_missing() is not None, reason=imagebind_fixture_missing() or "")
def test_the_fixture_images_are_decoded_whole() -> None:
    # They are smaller than twice the model's input: their exact-input conformance is untouched.
    for path in sorted((IMAGEBIND_TINY / "media").glob("*.*g")):
        assert torch.equal(image_file_to_input(str(path)), image_to_tensor(load_image(str(path)))), path
