"""Thermal images to the (1, 224, 224) float32 tensor the ImageBind thermal encoder takes.

The official ImageBind release has no thermal loader; this is bindsearch's
own convention. Any image Pillow reads (PNG, JPEG, TIFF, BMP, ...) is turned
into one channel of intensities in [0, 1]:

* 8-bit single-channel (mode ``L``): ``value / 255``.
* 16-bit single-channel (raw radiometric counts, modes ``I;16*``), 32-bit
  integer (``I``) or float (``F``, e.g. temperatures): a per-image min-max
  stretch, ``(v - min) / (max - min)`` over the image's finite values
  (a constant image gives 0). Raw counts are not comparable across cameras
  (their offset and gain depend on the sensor, its temperature and its
  calibration), so only the contrast within the image is kept, as 8-bit
  thermal renders do. Non-finite float values become 0.
* Colour and anything else (RGB, RGBA, palette, greyscale with alpha,
  1-bit): Pillow's ``convert("L")`` (ITU-R 601 luma, L = 0.299 R + 0.587 G +
  0.114 B; alpha is dropped), then ``/ 255``. A false-colour palette is not
  undone: a render that maps heat to hue loses its meaning here.

EXIF orientation is applied first. Then, as for images, the shorter side is
scaled to 224 with an antialiased bicubic filter (computed in float, the same
filter as Pillow's bicubic resize), the result clipped to [0, 1] (as 8-bit
pixels are), the centred 224 x 224 square cut out, and the intensities
standardised as ``(x - mean) / std`` with ``ThermalSettings`` mean 0.0 and
std 1.0: by default plain [0, 1] intensities, what a ToTensor-only pipeline
gives.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..errors import MediaError
from ..preprocess.image import IMAGE_SIZE
from ..preprocess.sensors import resize_crop, standardize
from .image import MAX_PIXELS
from .sensor_files import describe_mode, open_sensor_image, sniff_sensor_file
from .sensor_settings import ThermalSettings

_STRETCH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_THERMAL_KINDS = dict.fromkeys([".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"], "image")


def min_max_stretch(values: np.ndarray) -> np.ndarray:
    """(v - min) / (max - min) over the finite values, float64 in [0, 1]; constant or non-finite -> 0.

    Raises ValueError (with a user-facing reason) when no value is finite.
    """
    with np.errstate(invalid="ignore"):  # signalling NaNs raise the invalid flag when cast
        v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if not finite.any():
        raise ValueError("holds no finite value (every pixel is NaN or infinite)")
    lo, hi = float(v[finite].min()), float(v[finite].max())
    out = np.zeros(v.shape, dtype=np.float64)
    if hi <= lo:
        return out
    # Halved so that the span of values near the float64 limits does not overflow.
    out[finite] = (v[finite] / 2 - lo / 2) / (hi / 2 - lo / 2)
    return np.clip(out, 0.0, 1.0)


def thermal_intensities(img: Image.Image) -> np.ndarray:
    """A decoded thermal image to intensities (H, W) float64 in [0, 1], following the mode rules above.

    Raises ValueError with a user-facing reason (a float image with no finite
    value, a mode Pillow cannot convert).
    """
    if img.mode in _STRETCH_MODES:
        return min_max_stretch(np.asarray(img))
    if img.mode != "L":
        try:
            img = img.convert("L")
        except (ValueError, OSError) as exc:
            raise ValueError(f"cannot convert a {describe_mode(img.mode)} image to one channel ({exc})") from None
    return np.asarray(img, dtype=np.uint8).astype(np.float64) / 255.0


def thermal_to_input(intensities: np.ndarray, settings: ThermalSettings | None = None) -> torch.Tensor:
    """Intensities (H, W) in [0, 1] to the (1, 224, 224) float32 model input (bicubic resize, crop, standardise)."""
    s = settings or ThermalSettings()
    square = resize_crop(np.asarray(intensities, dtype=np.float64), IMAGE_SIZE, "bicubic").clamp_(0.0, 1.0)
    out = standardize(square, s.mean, s.std).unsqueeze(0).contiguous()
    assert out.shape == (1, IMAGE_SIZE, IMAGE_SIZE) and out.dtype == torch.float32, (out.shape, out.dtype)
    return out


def read_thermal(path: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a thermal image file to intensities (H, W) float64 in [0, 1]; MediaError for a bad file."""
    sniff_sensor_file(path, _THERMAL_KINDS, "a thermal image")
    img = open_sensor_image(path, max_pixels)
    try:
        return thermal_intensities(img)
    except ValueError as exc:
        raise MediaError(path, str(exc)) from None


def load_thermal(path: str, settings: ThermalSettings | None = None, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """A thermal image file to the (1, 224, 224) float32 model input; MediaError for a bad file."""
    return thermal_to_input(read_thermal(path, max_pixels), settings)
