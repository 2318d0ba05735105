"""IMU recordings as a plot: accelerometer above, gyroscope below, x/y/z in red/green/blue."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ..loaders.imu import fill_missing, read_imu
from .canvas import plot_size
from .text import font

SPAN_S = 10.0  # seconds shown when a time is asked for: one IMU encoder window
BACKGROUND = (252, 252, 250)
GRID = (225, 225, 222)
LABEL = (110, 110, 110)
AXIS_COLOURS = ((215, 50, 45), (40, 150, 60), (45, 90, 210))  # x, y, z
PANELS = (("accelerometer", slice(0, 3)), ("gyroscope", slice(3, 6)))


def imu_picture(path: str, at: float | None, size: int) -> Image.Image:
    """The whole recording, or ``SPAN_S`` seconds from ``at`` when that span holds two samples or more."""
    signal = read_imu(path)
    values = fill_missing(signal.values, signal.times)
    times = signal.times
    if at is not None:
        inside = (times >= at) & (times < at + SPAN_S)
        if inside.sum() >= 2:
            values, times = values[inside], times[inside]
    width, height = plot_size(size)
    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    margin = max(2, size // 80)
    panel_height = (height - 3 * margin) // 2
    label_font = font(max(8, size // 32))
    for p, (name, channels) in enumerate(PANELS):
        top = margin + p * (panel_height + margin)
        box = (margin, top, width - margin - 1, top + panel_height - 1)
        draw.rectangle(box, outline=GRID)
        _draw_panel(draw, box, times, values[:, channels])
        draw.text((box[0] + 3, box[1] + 1), name, fill=LABEL, font=label_font)
    return img


def _draw_panel(
    draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], times: np.ndarray, values: np.ndarray
) -> None:
    """Three channels (T, 3) in one box, on one vertical scale so that their sizes compare."""
    x0, y0, x1, y1 = box
    lo, hi = float(values.min()), float(values.max())
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        lo, hi = lo - 1.0, hi + 1.0  # a flat signal is drawn as a line across the middle
    pad = 0.08 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    columns = x1 - x0 - 1
    for c in range(values.shape[1]):
        xs, ys = envelope(times, values[:, c], columns)
        px = x0 + 1 + xs
        py = y1 - 1 - (ys - lo) / (hi - lo) * (y1 - y0 - 2)
        draw.line(list(zip(px.tolist(), py.tolist())), fill=AXIS_COLOURS[c], width=1)


def envelope(times: np.ndarray, values: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Points (x in [0, columns], value) to draw a series ``columns`` pixels wide.

    A series with more than two samples a pixel is reduced to each column's
    lowest and highest value, in turn: drawing that zigzag shows every spike
    as a full plot would, with at most 2 x columns points however long the
    recording (days of samples stay cheap).
    """
    span = float(times[-1] - times[0])
    x = (times - times[0]) / span * columns if span > 0 else np.zeros(times.shape)
    if times.size <= 2 * columns:
        return x, values
    cols = np.minimum(x.astype(np.intp), columns)
    starts = np.flatnonzero(np.r_[True, np.diff(cols) > 0])
    lows, highs = np.minimum.reduceat(values, starts), np.maximum.reduceat(values, starts)
    xs = np.repeat(cols[starts], 2).astype(np.float64)
    ys = np.column_stack([lows, highs]).ravel()
    return xs, ys
