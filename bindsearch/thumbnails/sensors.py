"""Depth maps and thermal images in false colour."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..loaders.depth import read_depth
from ..loaders.thermal import read_thermal
from .canvas import reduced, shrink
from .colour import DEPTH_LUT, IRON_LUT, colour_map


def depth_picture(path: str, size: int) -> Image.Image:
    """A depth map coloured by nearness (yellow near, blue far, darkest where unmeasured)."""
    data = read_depth(path)
    values = reduced(data.values, size)
    if data.relative:
        nearness = values  # already a disparity: bright = near
    else:
        # Disparity (1 / depth) rather than depth: detail up close matters more than the far wall,
        # and it is what the depth encoder sees. Unmeasured pixels stay NaN.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            nearness = np.where(np.isfinite(values) & (values > 0), 1.0 / values, np.nan)
    return shrink(Image.fromarray(colour_map(nearness, DEPTH_LUT)), size)


def thermal_picture(path: str, size: int) -> Image.Image:
    """A thermal image in the iron palette (black cold, white hot)."""
    intensities = reduced(read_thermal(path), size)
    return shrink(Image.fromarray(colour_map(intensities, IRON_LUT)), size)
