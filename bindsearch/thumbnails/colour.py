"""False colour for one-channel maps (depth, heat, sound energy), in plain NumPy."""

from __future__ import annotations

import numpy as np

# Percentiles that set the ends of the colour scale: a few hot or dead pixels (or a sensor's
# saturated edge) would otherwise squeeze every other value into a few colours.
LOW_PERCENTILE, HIGH_PERCENTILE = 2.0, 98.0


def colour_map(
    values: np.ndarray, lut: np.ndarray, limits: tuple[float, float] | None = None
) -> np.ndarray:
    """(H, W) values to (H, W, 3) uint8 colours from a (256, 3) uint8 lookup table.

    The scale runs from the 2nd to the 98th percentile of the finite values
    (or from ``limits``, when given); values beyond either end take the end
    colour. Non-finite values (NaN: no measurement) take ``lut[0]``. When the
    scale has no width (a constant map) every finite value takes the middle
    colour ``lut[128]``. Raises ValueError for arrays of the wrong shape.
    """
    values = np.asarray(values)
    lut = np.asarray(lut)
    if values.ndim != 2:
        raise ValueError(f"values must be a 2-D map (H, W), got shape {values.shape}")
    if lut.shape != (256, 3) or lut.dtype != np.uint8:
        raise ValueError(f"lut must be a (256, 3) uint8 table, got shape {lut.shape} and dtype {lut.dtype}")
    with np.errstate(invalid="ignore", over="ignore"):
        v = values.astype(np.float64)
    finite = np.isfinite(v)
    index = np.zeros(v.shape, dtype=np.intp)
    if finite.any():
        if limits is None:
            lo, hi = (float(x) for x in np.percentile(v[finite], [LOW_PERCENTILE, HIGH_PERCENTILE]))
        else:
            lo, hi = float(limits[0]), float(limits[1])
        if hi > lo:
            # Halved so that a span near the float64 limits does not overflow to infinity.
            t = (v[finite] / 2 - lo / 2) / (hi / 2 - lo / 2)
            index[finite] = np.floor(np.clip(t, 0.0, 1.0) * 255 + 0.5).astype(np.intp)
        else:
            index[finite] = 128
    return lut[index]


def _ramp(t: np.ndarray, stops: list[tuple[float, tuple[int, int, int]]]) -> np.ndarray:
    """Colours interpolated linearly between (position, RGB) stops, as a (len(t), 3) uint8 array."""
    positions = [p for p, _ in stops]
    channels = [np.interp(t, positions, [c[k] for _, c in stops]) for k in range(3)]
    return np.round(np.stack(channels, axis=1)).clip(0, 255).astype(np.uint8)


def depth_lut() -> np.ndarray:
    """Deep blue (far) through teal and green to yellow (near).

    Brightness rises steadily along the ramp (luma 24, 92, 163, 221 at the
    stops), so nearness reads the same in greyscale and to colour-blind eyes,
    and no false edge appears where a rainbow would change hue abruptly.
    """
    t = np.linspace(0.0, 1.0, 256)
    return _ramp(t, [(0.0, (20, 20, 90)), (0.35, (30, 110, 160)), (0.7, (90, 190, 110)), (1.0, (250, 230, 60))])


def iron_lut() -> np.ndarray:
    """Black through purple-red, orange and yellow to white: the "iron" look of thermal cameras.

    The classic black-red-yellow-white heat ramp (red, green and blue each
    rising linearly over one third of the range, one after the other) with a
    violet tint in the cool third, which keeps cold regions from reading as
    plain black. Brightness never falls along the ramp.
    """
    t = np.linspace(0.0, 1.0, 256)
    r = np.clip(3 * t, 0, 1)
    g = np.clip(3 * t - 1, 0, 1)
    tint = 0.45 * np.sin(np.pi * np.clip(t / 0.45, 0, 1))
    b = np.clip(np.clip(3 * t - 2, 0, 1) + tint, 0, 1)
    return np.round(np.stack([r, g, b], axis=1) * 255).astype(np.uint8)


DEPTH_LUT = depth_lut()
IRON_LUT = iron_lut()
DEPTH_LUT.setflags(write=False)  # shared by every caller: read-only, so none can repaint another's pictures
IRON_LUT.setflags(write=False)
