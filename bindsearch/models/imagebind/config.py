"""Architecture of an ImageBind model: the official constructor's arguments, plus fixed facts.

The field names are exactly the keyword arguments of the official model
constructor, so a configuration written for it (such as the conformance
fixture's ``config.json``) is read as is. The defaults are the released
"huge" model, whose checkpoint is ``imagebind_huge.pth``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# -- Fixed by the architecture (not constructor arguments) ---------------------

IMAGE_SIZE = 224  # vision, depth and thermal inputs are square images of this side
IMAGE_CHANNELS = 3
DEPTH_CHANNELS = 1
THERMAL_CHANNELS = 1
TEXT_CONTEXT = 77  # tokens per text, start and end tokens included
TEXT_VOCAB = 49408  # CLIP byte-pair vocabulary
IMU_CHANNELS = 6  # accelerometer xyz + gyroscope xyz
IMU_STEPS = 2000

# Scales the official postprocessors multiply unit embeddings by. Text learns its
# scale (stored in the checkpoint); these are only its starting value and the
# values the fixed scales are stored with.
TEXT_INITIAL_SCALE = 1.0 / 0.07
FIXED_SCALES = {"audio": 20.0, "depth": 5.0, "thermal": 10.0, "imu": 5.0}

# Towers, in the order the official model lists them. "vision" serves both
# images and videos.
MODALITIES = ("vision", "text", "audio", "depth", "thermal", "imu")


@dataclass(frozen=True)
class ImageBindConfig:
    """Constructor arguments of the official ImageBind model; defaults give ImageBind-Huge.

    Drop-path rates are kept so that any official configuration loads, but they
    do nothing at inference.
    """

    video_frames: int = 2
    kernel_size: tuple[int, int, int] = (2, 14, 14)
    audio_kernel_size: int = 16
    audio_stride: int = 10
    out_embed_dim: int = 1024
    vision_embed_dim: int = 1280
    vision_num_blocks: int = 32
    vision_num_heads: int = 16
    audio_embed_dim: int = 768
    audio_num_blocks: int = 12
    audio_num_heads: int = 12
    audio_num_mel_bins: int = 128
    audio_target_len: int = 204
    audio_drop_path: float = 0.1
    text_embed_dim: int = 1024
    text_num_blocks: int = 24
    text_num_heads: int = 16
    depth_embed_dim: int = 384
    depth_kernel_size: int = 16
    depth_num_blocks: int = 12
    depth_num_heads: int = 8
    depth_drop_path: float = 0.0
    thermal_embed_dim: int = 768
    thermal_kernel_size: int = 16
    thermal_num_blocks: int = 12
    thermal_num_heads: int = 12
    thermal_drop_path: float = 0.0
    imu_embed_dim: int = 512
    imu_kernel_size: int = 8
    imu_num_blocks: int = 6
    imu_num_heads: int = 8
    imu_drop_path: float = 0.7

    def __post_init__(self) -> None:
        # JSON has no tuples: accept a list for the vision kernel.
        kernel = self.kernel_size
        if isinstance(kernel, (list, tuple)) and len(kernel) == 3 and all(_is_int(k) for k in kernel):
            object.__setattr__(self, "kernel_size", tuple(int(k) for k in kernel))
        else:
            raise ValueError(
                f"ImageBindConfig.kernel_size must be three integers (time, height, width), got {kernel!r}"
            )
        for field in dataclasses.fields(self):
            if field.name == "kernel_size":
                continue
            value = getattr(self, field.name)
            if field.name.endswith("_drop_path"):
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
                    raise ValueError(f"ImageBindConfig.{field.name} must be a number in [0, 1), got {value!r}")
            elif not _is_int(value) or value <= 0:
                raise ValueError(f"ImageBindConfig.{field.name} must be a positive integer, got {value!r}")
        for modality in MODALITIES:
            dim, heads = self.embed_dim(modality), self.num_heads(modality)
            if dim % heads:
                raise ValueError(
                    f"ImageBindConfig: {modality}_embed_dim ({dim}) must be divisible by {modality}_num_heads ({heads})"
                )
        if self.video_frames % self.kernel_size[0]:
            raise ValueError(
                f"ImageBindConfig: video_frames ({self.video_frames}) must be a multiple of "
                f"the temporal kernel size ({self.kernel_size[0]})"
            )
        if IMU_STEPS % self.imu_kernel_size:
            raise ValueError(f"ImageBindConfig: imu_kernel_size ({self.imu_kernel_size}) must divide {IMU_STEPS}")
        for name, size in (
            ("audio_num_mel_bins", self.audio_num_mel_bins),
            ("audio_target_len", self.audio_target_len),
        ):
            if size < self.audio_kernel_size:
                raise ValueError(f"ImageBindConfig: {name} ({size}) is smaller than audio_kernel_size")

    # -- construction ------------------------------------------------------------

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ImageBindConfig:
        """Build from official constructor arguments; unnamed fields keep the huge defaults.

        Unknown keys are an error rather than silently ignored: a misspelt
        ``text_num_block`` would otherwise build the wrong model.
        """
        if not isinstance(values, Mapping):
            raise ValueError(
                f"ImageBind config must be a mapping of constructor arguments, got {type(values).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown ImageBind config key(s): {', '.join(map(str, unknown))}; "
                f"valid keys are the official constructor arguments: {', '.join(sorted(known))}"
            )
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-able constructor arguments."""
        out = dataclasses.asdict(self)
        out["kernel_size"] = list(self.kernel_size)
        return out

    # -- per-tower views ---------------------------------------------------------

    def embed_dim(self, modality: str) -> int:
        return int(getattr(self, f"{_check(modality)}_embed_dim"))

    def num_blocks(self, modality: str) -> int:
        return int(getattr(self, f"{_check(modality)}_num_blocks"))

    def num_heads(self, modality: str) -> int:
        return int(getattr(self, f"{_check(modality)}_num_heads"))

    def audio_grid(self) -> tuple[int, int]:
        """Patches along (mel, time) of the audio spectrogram with its overlapping stride."""
        k, s = self.audio_kernel_size, self.audio_stride
        return (self.audio_num_mel_bins - k) // s + 1, (self.audio_target_len - k) // s + 1

    def num_tokens(self, modality: str) -> int:
        """Sequence length entering the trunk: the patches plus the cls token (text: the context)."""
        modality = _check(modality)
        if modality == "vision":
            t, h, w = self.kernel_size
            return (self.video_frames // t) * (IMAGE_SIZE // h) * (IMAGE_SIZE // w) + 1
        if modality == "text":
            return TEXT_CONTEXT
        if modality == "audio":
            return math.prod(self.audio_grid()) + 1
        if modality in ("depth", "thermal"):
            k = getattr(self, f"{modality}_kernel_size")
            return (IMAGE_SIZE // k) ** 2 + 1
        return IMU_STEPS // self.imu_kernel_size + 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"unknown ImageBind modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    return modality
