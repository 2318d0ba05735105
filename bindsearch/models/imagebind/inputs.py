"""Checks model inputs and lays them out for a tower.

Input kinds are what a caller has (``image``, ``video``, ``text``, ...);
towers are what computes them (``vision`` serves both images and videos).
Inputs with a clip axis (audio, video) are flattened to one row per clip;
the model averages the clips' embeddings afterwards.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .config import (
    DEPTH_CHANNELS,
    IMAGE_CHANNELS,
    IMAGE_SIZE,
    IMU_CHANNELS,
    IMU_STEPS,
    TEXT_CONTEXT,
    TEXT_VOCAB,
    THERMAL_CHANNELS,
    ImageBindConfig,
)

INPUT_KINDS = ("image", "video", "text", "audio", "depth", "thermal", "imu")
TOWER_OF = {"image": "vision", "video": "vision", "text": "text", "audio": "audio", "depth": "depth",
            "thermal": "thermal", "imu": "imu"}  # fmt: skip


def check_kind(kind: str) -> str:
    if kind not in TOWER_OF:
        raise ValueError(f"unknown ImageBind input kind {kind!r}; expected one of {', '.join(INPUT_KINDS)}")
    return kind


def expected_shape(kind: str, config: ImageBindConfig) -> tuple[Any, ...]:
    """The input shape for ``kind``; "B" is the batch and "clips" the clip axis."""
    s = IMAGE_SIZE
    return {
        "image": ("B", IMAGE_CHANNELS, s, s),
        "video": ("B", "clips", IMAGE_CHANNELS, config.video_frames, s, s),
        "text": ("B", TEXT_CONTEXT),
        "audio": ("B", "clips", 1, config.audio_num_mel_bins, config.audio_target_len),
        "depth": ("B", DEPTH_CHANNELS, s, s),
        "thermal": ("B", THERMAL_CHANNELS, s, s),
        "imu": ("B", IMU_CHANNELS, IMU_STEPS),
    }[check_kind(kind)]


def to_tower_input(kind: str, x: Any, config: ImageBindConfig) -> tuple[torch.Tensor, int]:
    """Validates ``x`` and returns (tower input with one row per clip, clips per item).

    Raises ValueError, naming the expected shape, for a wrong shape or dtype.
    """
    want = expected_shape(kind, config)
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{kind} input must be a torch.Tensor or numpy array, got {type(x).__name__}")
    shape = tuple(x.shape)
    fixed = [(i, w) for i, w in enumerate(want) if isinstance(w, int)]
    if len(shape) != len(want) or any(shape[i] != w for i, w in fixed) or ("clips" in want and shape[1] < 1):
        hint = " (add a batch axis)" if len(shape) == len(want) - 1 else ""
        raise ValueError(f"{kind} input must have shape ({', '.join(map(str, want))}), got {shape}{hint}")

    if kind == "text":
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise ValueError(f"text input must be integer token ids, got dtype {x.dtype}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= TEXT_VOCAB):
            raise ValueError(f"text token ids must lie in [0, {TEXT_VOCAB}), got [{int(x.min())}, {int(x.max())}]")
        return x.long(), 1
    if not x.is_floating_point():
        raise ValueError(f"{kind} input must be a floating-point tensor, got dtype {x.dtype}")
    if "clips" in want:
        clips = shape[1]
        return x.reshape(shape[0] * clips, *shape[2:]), clips
    return x, 1
