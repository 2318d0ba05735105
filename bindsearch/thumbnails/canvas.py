"""Sizes of thumbnails, shared by every kind of picture."""

from __future__ import annotations

import numpy as np
from PIL import Image

# Plots, spectrograms and text cards have no size of their own; they are drawn at 16:9, the shape
# of most video, so that a page of mixed results lines up.
PLOT_ASPECT = 9 / 16


def plot_size(size: int) -> tuple[int, int]:
    """(width, height) of a drawn picture whose longest side is ``size``."""
    return size, max(1, round(size * PLOT_ASPECT))


def shrink(img: Image.Image, size: int) -> Image.Image:
    """``img`` fitted within size x size, aspect kept; never enlarged (a small source stays small)."""
    if max(img.size) > size:
        # reducing_gap lets Pillow shrink by whole factors first (fast) and filter only the last step.
        img.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return img


def reduced(values: np.ndarray, size: int) -> np.ndarray:
    """Every k-th row and column of a 2-D map, k chosen so that about 2 x ``size`` pixels remain a side.

    A sensor map can be millions of pixels; its percentiles and colours need not be computed at
    full resolution for a picture of a few hundred pixels, and the final resize filters the rest.
    """
    step = max(1, max(values.shape) // (2 * size))
    return values[::step, ::step] if step > 1 else values
