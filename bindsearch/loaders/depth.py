"""Depth maps to the (1, 224, 224) float32 tensor the ImageBind depth encoder takes.

The official ImageBind release has no depth loader; this is bindsearch's own
convention, built on what the paper says: the depth encoder was trained on
disparity maps, following Omnivore's SUN RGB-D setup.

Files and units:

* 16-bit single-channel PNG or TIFF (Pillow modes ``I;16*``; also 32-bit
  integer images, mode ``I``): depth in **millimetres**; 0 means no
  measurement.
* 32-bit float TIFF (mode ``F``): depth in **metres**, like the arrays below.
* ``.npy``, or ``.npz`` holding a single array or an array named ``depth``:
  floating-point depth in **metres**, shaped (H, W), (1, H, W) or (H, W, 1);
  NaN, infinite and non-positive values mean no measurement. Integer arrays
  are refused (their unit would be a guess): divide millimetres by 1000.
  Pickled (object) arrays are never loaded.
* 8-bit single-channel PNG/TIFF (mode ``L``): an already inverted, relative
  depth image, bright = near, as monocular depth estimators (MiDaS, Depth
  Anything) save them; it is taken as a relative disparity, ``value / 255``
  placed linearly on the normalised disparity scale [0, 1] below (0 = far or
  unknown, 255 = ``max_disparity``). Every pixel counts as measured.

Colour, palette, alpha and bilevel images are refused, and so are maps with
no measured pixel at all. EXIF orientation, if any, is applied.

Conversion (all constants are ``DepthSettings``):

1. disparity in pixels ``d = focal_length_px * baseline_m / depth_m``
   (defaults 518.857901 px and 0.075 m: a Kinect-class sensor, as in NYU
   Depth v2 / SUN RGB-D); missing depth gives d = 0 (infinitely far);
2. ``min(d, max_disparity) / max_disparity`` (default 75.0, Omnivore's depth
   normalisation), so [0, 1];
3. shorter side to 224 with an antialiased bilinear filter on the float map
   (torch's ``interpolate(..., antialias=True)``), then the centred 224 x 224
   crop. Missing pixels are left out by normalised convolution
   (``preprocess.sensors.masked_resize_crop``): each output pixel is the
   weighted mean of the measured pixels under its filter, and is itself
   missing (0) when they carry less than half of the filter weight; so holes
   do not pull the disparity of their borders towards 0. A map of any size,
   1 x 1 included, is resized this way;
4. ``(x - mean) / std`` with mean 0.0418 and std 0.0295 (Omnivore's depth
   channel statistics).

For example a flat wall 2 m away: d = 518.857901 * 0.075 / 2 = 19.457 px,
19.457 / 75 = 0.25943, (0.25943 - 0.0418) / 0.0295 = 7.3773 everywhere.

This module also holds the file checks and the NumPy reader that the thermal
and IMU loaders share.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from ..errors import MediaError
from ..preprocess.image import IMAGE_SIZE
from ..preprocess.sensors import masked_resize_crop, standardize
from .image import MAX_PIXELS
from .sensor_files import describe_mode, load_numeric_array, open_sensor_image, sniff_sensor_file
from .sensor_settings import DepthSettings

# An output pixel is measured when measured input pixels carry at least this share of its filter weight.
MIN_VALID_WEIGHT = 0.5
_MM_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class DepthData(NamedTuple):
    """A decoded depth file: ``values`` (H, W) float64 and what they are.

    ``relative`` False: depth in metres; NaN, infinite or <= 0 where unmeasured.
    ``relative`` True: normalised disparity in [0, 1] (an 8-bit relative image / 255).
    """

    values: np.ndarray
    relative: bool


# --- pure conversions ----------------------------------------------------------------------------


def normalized_disparity(depth_m: np.ndarray, settings: DepthSettings | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Depth in metres (H, W) to (normalised disparity in [0, 1], measured mask), both (H, W).

    Unmeasured depth (NaN, infinite, <= 0) gives disparity 0 and mask False.
    """
    s = settings or DepthSettings()
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be a 2-D map (H, W), got shape {depth.shape}")
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth > 0)
    disparity = np.zeros(depth.shape, dtype=np.float64)
    with np.errstate(over="ignore", divide="ignore"):
        disparity[valid] = s.focal_length_px * s.baseline_m / depth[valid]
    return np.clip(disparity, 0.0, s.max_disparity) / s.max_disparity, valid


def disparity_to_input(
    disparity01: np.ndarray, valid: np.ndarray | None = None, settings: DepthSettings | None = None
) -> torch.Tensor:
    """Normalised disparity (H, W) in [0, 1] (+ measured mask) to the (1, 224, 224) float32 model input."""
    s = settings or DepthSettings()
    values = np.asarray(disparity01, dtype=np.float64)
    mask = np.ones(values.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    square = masked_resize_crop(values, mask, IMAGE_SIZE, "bilinear", min_valid=MIN_VALID_WEIGHT, fill=0.0)
    out = standardize(square, s.mean, s.std).unsqueeze(0).contiguous()
    assert out.shape == (1, IMAGE_SIZE, IMAGE_SIZE) and out.dtype == torch.float32, (out.shape, out.dtype)
    return out


def depth_to_input(depth_m: np.ndarray, settings: DepthSettings | None = None) -> torch.Tensor:
    """Depth in metres (H, W), NaN/inf/<=0 unmeasured, to the (1, 224, 224) float32 model input."""
    disparity, valid = normalized_disparity(depth_m, settings)
    return disparity_to_input(disparity, valid, settings)


def depth_data_to_input(data: DepthData, settings: DepthSettings | None = None) -> torch.Tensor:
    """A decoded depth file (``read_depth``) to the model input."""
    if data.relative:
        return disparity_to_input(np.clip(data.values, 0.0, 1.0), None, settings)
    return depth_to_input(data.values, settings)


# --- files ----------------------------------------------------------------------------------------


def load_depth(path: str, settings: DepthSettings | None = None, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """A depth file (PNG/TIFF/.npy/.npz) to the (1, 224, 224) float32 model input; MediaError for a bad file."""
    return depth_data_to_input(read_depth(path, max_pixels), settings)


def read_depth(path: str, max_pixels: int = MAX_PIXELS) -> DepthData:
    """Decode a depth file to metres (or, for an 8-bit image, to normalised relative disparity)."""
    kind = sniff_sensor_file(path, _DEPTH_KINDS, "a depth map")
    if kind == "image":
        data = _depth_from_image(path, open_sensor_image(path, max_pixels))
    else:
        array = load_numeric_array(path, name="depth", max_elements=max_pixels, what="depth map")
        data = DepthData(_depth_array(path, array), relative=False)
    if not data.relative and not (np.isfinite(data.values) & (data.values > 0)).any():
        raise MediaError(path, "holds no depth measurement (every value is 0, negative, NaN or infinite)")
    return data


_DEPTH_KINDS = {".png": "image", ".tif": "image", ".tiff": "image", ".npy": "npy", ".npz": "npz"}


def _depth_from_image(path: str, img: Image.Image) -> DepthData:
    mode = img.mode
    if mode in _MM_MODES:
        mm = np.asarray(img).astype(np.float64)
        depth = np.where(mm > 0, mm / 1000.0, np.nan)
        return DepthData(depth, relative=False)
    if mode == "F":
        with np.errstate(invalid="ignore"):  # signalling NaNs raise the invalid flag when cast
            return DepthData(np.asarray(img).astype(np.float64), relative=False)
    if mode == "L":
        return DepthData(np.asarray(img).astype(np.float64) / 255.0, relative=True)
    raise MediaError(
        path,
        f"is a {describe_mode(mode)} image; a depth map must be single-channel:"
        " 16-bit millimetres, or 8-bit relative depth (bright = near)",
    )


def _depth_array(path: str, array: np.ndarray) -> np.ndarray:
    if array.dtype.kind != "f":
        raise MediaError(
            path,
            f"array holds {array.dtype} values; depth arrays must be floating-point metres"
            " (divide integer millimetres by 1000, or save them as a 16-bit PNG)",
        )
    shape = array.shape
    if array.ndim == 3 and shape[0] == 1:
        array = array[0]
    elif array.ndim == 3 and shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2:
        raise MediaError(path, f"array has shape {shape}; a depth map must be (H, W), (1, H, W) or (H, W, 1)")
    if array.size == 0:
        raise MediaError(path, f"array is empty (shape {shape})")
    with np.errstate(invalid="ignore"):  # signalling NaNs raise the invalid flag when cast
        return array.astype(np.float64)
