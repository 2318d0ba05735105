"""Helpers the tests share: drawn images, space files, paths of the repository."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
TINY_SPACE_FILE = REPO / "examples" / "tiny-space.json"
EXAMPLE_MEDIA = REPO / "examples" / "media"


def draw_image(path: Path, seed: int, size: tuple[int, int] = (96, 80)) -> Path:
    """A distinct picture per seed: a coloured background with random shapes."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.integers(0, size[0] - 10), rng.integers(0, size[1] - 10)
        x1, y1 = x0 + rng.integers(5, 40), y0 + rng.integers(5, 40)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def copy_examples(dest: Path) -> Path:
    shutil.copytree(EXAMPLE_MEDIA, dest)
    return dest


def write_space(path: Path, **overrides: object) -> Path:
    spec = json.loads(TINY_SPACE_FILE.read_text())
    spec.update(overrides)
    path.write_text(json.dumps(spec))
    return path


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
