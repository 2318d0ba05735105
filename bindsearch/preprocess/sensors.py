"""One-channel maps (depth, thermal) to a square tensor: the resizing and cropping the sensor loaders share.

Geometry is the image recipe's (``preprocess.image``): the shorter side is
scaled to ``size`` (224) keeping the aspect ratio, the longer side truncated
to an integer, then the centred ``size`` x ``size`` square is cut out, its
offsets rounded as ``center_crop_box`` rounds them.

The resize is Pillow's / torch's antialiased separable filter, computed in
float (no 8-bit rounding): output sample ``i`` of a side resized from ``n`` to
``m`` sits at input position ``c = (i + 0.5) * n / m``; it is the normalised
weighted sum of the input samples ``j`` with ``|j + 0.5 - c| < support``,
weighted by ``kernel((j + 0.5 - c) / s)`` where ``s = max(n / m, 1)``
stretches the kernel when shrinking (that is the antialiasing) and
``support = kernel_support * s``. Kernels: "bilinear" (triangle, support 1)
and "bicubic" (Keys cubic with a = -0.5, support 2, as Pillow and torch's
antialiased bicubic). The result equals
``torch.nn.functional.interpolate(x, size, mode=kernel, antialias=True,
align_corners=False)`` followed by the centre crop, but only the rows and
columns that survive the crop are computed, as two small matrix products, so
that maps of any aspect ratio cost O(size * (H + W)) memory beyond the map.

Missing values (``masked_resize_crop``) are handled by normalised
convolution: the map times its validity mask and the mask are resized with
the same weights, the first divided by the second; an output pixel whose
valid weight is below ``min_valid`` (by default half of its total weight) is
itself missing and gets ``fill``. So valid values never mix with the
placeholder of missing ones, and holes shrink or grow by at most half a
kernel width instead of smearing into their surroundings.
"""

from __future__ import annotations

import numpy as np
import torch

from .image import IMAGE_SIZE, center_crop_box, resized_size

KERNELS = ("bilinear", "bicubic")
_SUPPORT = {"bilinear": 1.0, "bicubic": 2.0}
_CUBIC_A = -0.5  # Pillow's and torch's antialiased bicubic coefficient



def _kernel(name: str, x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    if name == "bilinear":
        return np.clip(1.0 - x, 0.0, None)
    a = _CUBIC_A
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def resize_weights(
    in_size: int, out_size: int, kernel: str = "bilinear", start: int = 0, count: int | None = None
) -> torch.Tensor:
    """Weights (count, in_size), float64: output samples ``start .. start + count`` of an in_size -> out_size resize.

    Row ``i`` holds the normalised filter weights of output sample
    ``start + i`` over the input samples; rows sum to 1.
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {', '.join(KERNELS)}")
    if in_size <= 0 or out_size <= 0:
        raise ValueError(f"sizes must be positive, got {in_size} -> {out_size}")
    count = out_size - start if count is None else count
    if start < 0 or count < 0 or start + count > out_size:
        raise ValueError(f"output samples {start}..{start + count} lie outside 0..{out_size}")
    scale = in_size / out_size
    stretch = max(scale, 1.0)
    support = _SUPPORT[kernel] * stretch
    centers = (np.arange(start, start + count, dtype=np.float64) + 0.5) * scale
    # Pillow's window: xmin = int(c - support + 0.5), xmax = int(c + support + 0.5), clipped to the input.
    lo = np.maximum((centers - support + 0.5).astype(np.int64), 0)
    hi = np.minimum((centers + support + 0.5).astype(np.int64), in_size)
    taps = int((hi - lo).max()) if count else 0
    index = lo[:, None] + np.arange(taps)[None, :]
    inside = index < hi[:, None]
    w = _kernel(kernel, (index + 0.5 - centers[:, None]) / stretch) * inside
    total = w.sum(axis=1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total != 0)
    out = np.zeros((count, in_size), dtype=np.float64)
    rows = np.broadcast_to(np.arange(count)[:, None], index.shape)
    np.add.at(out, (rows[inside], index[inside]), w[inside])
    return torch.from_numpy(out)


def _crop_weights(height: int, width: int, size: int, kernel: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Row weights (size, H) and column weights (size, W) of resize-shorter-side-then-centre-crop."""
    new_w, new_h = resized_size(width, height, short_side=size)
    left, top, _, _ = center_crop_box(new_w, new_h, size)
    if left < 0 or top < 0:  # cannot happen: the shorter side is exactly ``size``
        raise AssertionError((new_w, new_h, size))
    rows = resize_weights(height, new_h, kernel, top, size)
    cols = resize_weights(width, new_w, kernel, left, size)
    return rows, cols


def _as_map(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if t.dim() != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty 2-D map (H, W), got shape {tuple(t.shape)}")
    return t


def resize_crop(x: np.ndarray | torch.Tensor, size: int = IMAGE_SIZE, kernel: str = "bilinear") -> torch.Tensor:
    """A 2-D map (H, W) to (size, size) float32: shorter side to ``size`` (antialiased ``kernel``), centre crop."""
    t = _as_map(x, "map").to(torch.float64)
    rows, cols = _crop_weights(t.shape[0], t.shape[1], size, kernel)
    out = rows @ t @ cols.T
    assert out.shape == (size, size), out.shape
    return out.to(torch.float32)


def masked_resize_crop(
    x: np.ndarray | torch.Tensor,
    valid: np.ndarray | torch.Tensor,
    size: int = IMAGE_SIZE,
    kernel: str = "bilinear",
    min_valid: float = 0.5,
    fill: float = 0.0,
) -> torch.Tensor:
    """Like ``resize_crop`` for a map with missing values (``valid`` False), by normalised convolution.

    Returns (size, size) float32; pixels whose valid share of the filter
    weight is below ``min_valid`` are ``fill``. Values at invalid positions of
    ``x`` are ignored (they may be NaN).
    """
    t = _as_map(x, "map").to(torch.float64)
    m = _as_map(valid, "valid mask")
    if m.shape != t.shape:
        raise ValueError(f"mask shape {tuple(m.shape)} differs from map shape {tuple(t.shape)}")
    if not 0.0 < min_valid <= 1.0:
        raise ValueError(f"min_valid must lie in (0, 1], got {min_valid}")
    m = m.to(torch.bool)
    rows, cols = _crop_weights(t.shape[0], t.shape[1], size, kernel)
    weight = rows @ m.to(torch.float64) @ cols.T
    total = rows @ torch.where(m, t, torch.zeros((), dtype=torch.float64)) @ cols.T
    keep = weight >= min_valid - 1e-9
    safe = torch.where(keep, weight, torch.ones((), dtype=torch.float64))
    out = torch.where(keep, total / safe, torch.full_like(total, fill))
    assert out.shape == (size, size), out.shape
    return out.to(torch.float32)


def standardize(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """``(x - mean) / std`` (subtract then divide, as the image transforms do)."""
    return (x - mean) / std
