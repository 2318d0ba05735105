"""Time series of a bound modality as a plot: up to six channels, three to a panel."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ..loaders.timeseries import read_series
from .canvas import plot_size
from .imu import BACKGROUND, GRID, LABEL, _draw_panel
from .text import font

MAX_CHANNELS_SHOWN = 6


def series_picture(path: str, at: float | None, size: int) -> Image.Image:
    """The whole series (its steps on the horizontal axis); ``at`` is ignored: a series has no clock."""
    values = read_series(path)[:, :MAX_CHANNELS_SHOWN]
    times = np.arange(values.shape[0], dtype=np.float64)
    width, height = plot_size(size)
    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    margin = max(2, size // 80)
    panels = [range(i, min(i + 3, values.shape[1])) for i in range(0, values.shape[1], 3)]
    panel_height = (height - (len(panels) + 1) * margin) // len(panels)
    label_font = font(max(8, size // 32))
    for p, channels in enumerate(panels):
        top = margin + p * (panel_height + margin)
        box = (margin, top, width - margin - 1, top + panel_height - 1)
        draw.rectangle(box, outline=GRID)
        _draw_panel(draw, box, times, values[:, list(channels)])
        draw.text((box[0] + 3, box[1] + 1), f"channels {channels[0] + 1}-{channels[-1] + 1}"
                  if len(channels) > 1 else f"channel {channels[0] + 1}", fill=LABEL, font=label_font)
    return img
