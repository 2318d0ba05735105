"""RGB images to the (3, 224, 224) tensor the ImageBind vision encoder takes.

The recipe is the CLIP one: shorter side to 224 with bicubic interpolation,
centre crop 224 x 224, scale to [0, 1], normalise per channel with the CLIP
mean and standard deviation.

The reference resizes PIL images with Pillow's bicubic filter, which low-pass
filters when it shrinks. PyTorch's antialiased bicubic resize of 8-bit images
computes the same filter (the same taps, a = -0.5, the same support) about four
times faster (0.5 ms against 2.2 ms for a 640 x 480 photo at one thread); the
two round some sums differently, so up to 2 % of the 8-bit values differ by
one level, none by more (``tests/test_imagebind_preprocess.py``), and the
embeddings are the reference's to a cosine of 0.9999999.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

IMAGE_SIZE = 224
# CLIP's per-channel statistics, the ones the ImageBind image transform uses.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def resized_size(width: int, height: int, short_side: int = IMAGE_SIZE) -> tuple[int, int]:
    """(width, height) after scaling the shorter side to ``short_side``, keeping the aspect ratio.

    The longer side is truncated, not rounded, as the reference resize does.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    if width <= height:
        return short_side, int(short_side * height / width)
    return int(short_side * width / height), short_side


# The image and video transforms scale the whole picture's shorter side to 224 before cropping, so their
# work grows with the aspect ratio: a 1 x 20000 image becomes 224 x 4,480,000 pixels (gigabytes).
# Panoramas stay well under this ratio.
MAX_ASPECT_RATIO = 100


def elongation_reason(width: int, height: int, what: str = "image") -> str | None:
    """Why a ``width`` x ``height`` picture is refused for its aspect ratio, or None when it is within the limit."""
    long_side, short_side = max(width, height), min(width, height)
    if short_side > 0 and long_side / short_side > MAX_ASPECT_RATIO:
        return (f"{what} is too elongated ({width} x {height} pixels, {long_side / short_side:.0f}:1;"
                f" the limit is {MAX_ASPECT_RATIO}:1, since the shorter side is scaled to {IMAGE_SIZE})")
    return None


def reduced_decode_side(input_size: int = IMAGE_SIZE) -> int:
    """How far a large JPEG may be decoded reduced for a model that takes ``input_size`` pixels: to twice that
    (``loaders.image.decode_image``'s ``shorter_side_at_least``). The resize then still shrinks it at least
    twofold, and the embedding stays within a cosine of 0.99999 of a full decode's (measured on 4000 x 3000
    photos with added noise and fine stripes; tests/test_reduced_decode.py). A camera's 12-megapixel photo
    decodes at 1000 x 750, about three times faster."""
    return 2 * input_size


def center_crop_box(width: int, height: int, size: int = IMAGE_SIZE) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centred ``size`` x ``size`` square.

    Offsets are rounded halves (Python's round: ties to even), as in the reference.
    """
    left = int(round((width - size) / 2.0))
    top = int(round((height - size) / 2.0))
    return left, top, left + size, top + size


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """Float pixels in [0, 1], channels at dim -3 (RGB), to CLIP-normalised values.

    Works on (3, H, W) and on any leading batch or time dimensions before it.
    """
    if pixels.dim() < 3 or pixels.shape[-3] != 3:
        raise ValueError(f"expected RGB channels at dim -3, got shape {tuple(pixels.shape)}")
    shape = (3, 1, 1)
    mean = torch.tensor(CLIP_MEAN, dtype=pixels.dtype, device=pixels.device).view(shape)
    std = torch.tensor(CLIP_STD, dtype=pixels.dtype, device=pixels.device).view(shape)
    # Subtract then divide (not multiply by 1/std): the reference's order, so float32 results match bit for bit.
    return (pixels - mean) / std


def image_to_tensor(image: Image.Image, size: int = IMAGE_SIZE) -> torch.Tensor:
    """An RGB PIL image to a float32 tensor (3, size, size), resized, centre-cropped and normalised."""
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {image.mode!r} (use loaders.image.load_image)")
    width, height = resized_size(*image.size, short_side=size)
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)  # (3, H, W), channels last in memory
    if (width, height) != image.size:
        pixels = torch.nn.functional.interpolate(pixels[None], size=(height, width), mode="bicubic",
                                                 antialias=True)[0]
    left, top, right, bottom = center_crop_box(width, height, size)
    out = torch.from_numpy(normalized_pixels(pixels[:, top:bottom, left:right].permute(1, 2, 0).numpy()))
    assert out.shape == (3, size, size), out.shape
    return out


def normalized_pixels(array: np.ndarray) -> np.ndarray:
    """8-bit RGB pixels (H, W, 3) to normalised float32 (3, H, W), as ``normalize(pixels / 255)`` gives them.

    An 8-bit channel has only 256 values, so each one's result is computed once
    (by the very operations ``normalize`` applies, hence bit for bit the same)
    and the image is a table lookup: about five times faster than the arithmetic.
    """
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected 8-bit RGB pixels (H, W, 3), got {array.dtype} {array.shape}")
    return np.stack([_LOOKUP[c].take(array[..., c]) for c in range(3)])


def _lookup_table() -> np.ndarray:
    levels = torch.arange(256, dtype=torch.float32).div(255.0)
    return normalize(levels.view(1, 256, 1).expand(3, 256, 1).contiguous()).view(3, 256).numpy()


_LOOKUP = _lookup_table()


def images_to_batch(images: list[Image.Image], size: int = IMAGE_SIZE) -> torch.Tensor:
    """Several RGB PIL images to one float32 tensor (n, 3, size, size)."""
    if not images:
        return torch.empty((0, 3, size, size), dtype=torch.float32)
    return torch.stack([image_to_tensor(img, size) for img in images])
