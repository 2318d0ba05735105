"""Video frames to the (clips * 3, 3, 2, 224, 224) tensor the ImageBind vision encoder takes for a video.

The recipe (see the fixture README, "Preprocessing facts"), with the details
of the reference's video tools:

1. clips: ``num_clips`` (5) clips of 2 s spaced like the audio clips
   (``clips.clip_starts``) over duration = frames / fps; a clip holds the
   frames with index ceil(fps * start) up to, not including,
   ceil(fps * (start + 2)), cut at the last frame (``clip_frame_indices``);
2. 2 frames per clip, spread uniformly: the indices at
   linspace(0, n - 1, 2) within the clip, truncated, i.e. its first and last;
3. per clip: scale to [0, 1]; shorter side to 224 with bilinear
   interpolation (no antialiasing; the longer side is floor(long / short * 224));
   normalise with the CLIP mean and std; then 3 crops of 224 x 224 along the
   longer side: start, centre (offset rounded up), end (``crop_offsets``).

The views are laid out clip-major: [clip0 crop0, clip0 crop1, clip0 crop2,
clip1 crop0, ...], each (3 channels, 2 frames, 224, 224). The encoder embeds
each view and the caller averages them.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch

from .clips import clip_starts
from .image import IMAGE_SIZE, normalize

NUM_CLIPS = 5
CLIP_SECONDS = 2
FRAMES_PER_CLIP = 2
NUM_CROPS = 3


def clip_frame_indices(
    num_frames: int,
    fps: float,
    num_clips: int = NUM_CLIPS,
    clip_seconds: float = CLIP_SECONDS,
    frames_per_clip: int = FRAMES_PER_CLIP,
) -> list[list[int]]:
    """Ordinal indices of the frames sampled from each clip: ``num_clips`` lists of ``frames_per_clip``."""
    if num_frames <= 0 or not fps > 0:
        raise ValueError(f"need a positive frame count and rate, got {num_frames} frames at {fps} fps")
    if frames_per_clip <= 0:
        raise ValueError("frames_per_clip must be positive")
    duration = num_frames / fps
    chosen = []
    for start in clip_starts(duration, clip_seconds, num_clips):
        first = math.ceil(fps * float(start))
        stop = min(math.ceil(fps * float(start + Fraction(clip_seconds))), num_frames)
        if stop <= first:  # cannot happen for clips inside the video; keep one frame rather than none
            first, stop = min(first, num_frames - 1), min(first, num_frames - 1) + 1
        count = stop - first
        # Uniform spread over the clip's frames; truncation toward zero, as a float -> int cast does.
        offsets = torch.linspace(0, count - 1, frames_per_clip).clamp(0, count - 1).long().tolist()
        chosen.append([first + o for o in offsets])
    return chosen


def short_side_size(height: int, width: int, size: int = IMAGE_SIZE) -> tuple[int, int]:
    """(height, width) after scaling the shorter side to ``size``; the longer side is floored."""
    if height <= 0 or width <= 0:
        raise ValueError(f"frame size must be positive, got {width} x {height}")
    if width < height:
        return int(math.floor(height / width * size)), size
    return size, int(math.floor(width / height * size))


def crop_offsets(height: int, width: int, size: int = IMAGE_SIZE, num_crops: int = NUM_CROPS) -> list[tuple[int, int]]:
    """(top, left) of each square crop: along the longer side, start / centre / end for 3 crops.

    The centre offset is rounded up. A single crop is the centre one.
    """
    if height < size or width < size:
        raise ValueError(f"frame {width} x {height} is smaller than the {size} crop")
    if num_crops not in (1, 3):
        raise ValueError("num_crops must be 1 or 3")
    top, left = math.ceil((height - size) / 2), math.ceil((width - size) / 2)
    if num_crops == 1:
        return [(top, left)]
    if height > width:  # portrait: top, centre, bottom
        return [(0, left), (top, left), (height - size, left)]
    return [(top, 0), (top, left), (top, width - size)]  # landscape or square: left, centre, right


def clip_to_views(frames: torch.Tensor, size: int = IMAGE_SIZE, num_crops: int = NUM_CROPS) -> torch.Tensor:
    """One clip's frames, uint8 (T, H, W, 3) RGB, to normalised crops (num_crops, 3, T, size, size)."""
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames shaped (T, H, W, 3), got {tuple(frames.shape)}")
    pixels = frames.permute(0, 3, 1, 2).to(torch.float32) / 255.0  # (T, 3, H, W)
    height, width = short_side_size(pixels.shape[-2], pixels.shape[-1], size)
    # Each frame is resized on its own, as the reference's (C, T, H, W) interpolation does.
    pixels = torch.nn.functional.interpolate(pixels, size=(height, width), mode="bilinear", align_corners=False)
    pixels = normalize(pixels).permute(1, 0, 2, 3)  # (3, T, h, w)
    views = [pixels[..., y : y + size, x : x + size] for y, x in crop_offsets(height, width, size, num_crops)]
    return torch.stack(views)


def video_to_input(
    clips: torch.Tensor | np.ndarray, size: int = IMAGE_SIZE, num_crops: int = NUM_CROPS
) -> torch.Tensor:
    """Sampled frames, uint8 (clips, T, H, W, 3), to model input (clips * num_crops, 3, T, size, size).

    Clips are processed one at a time so that full-resolution float frames of
    only one clip are in memory at once.
    """
    clips = torch.as_tensor(clips)
    if clips.dim() != 5 or clips.shape[-1] != 3 or clips.shape[0] == 0:
        raise ValueError(f"expected frames shaped (clips, T, H, W, 3), got {tuple(clips.shape)}")
    out = torch.cat([clip_to_views(clip, size, num_crops) for clip in clips])
    assert out.shape == (clips.shape[0] * num_crops, 3, clips.shape[1], size, size), out.shape
    return out
