"""Towers for modalities a space is taught with ``bindsearch bind``: ImageBind's designs, sized by data.

A new modality gets the tower of the ImageBind modality whose input looks like
its own, built from the same parts (stem, pre-norm-free trunk with learned
bias key/values, cls head, normalise-and-scale postprocessor):

- ``timeseries``: the IMU design, a Linear stem over windows of ``kernel_size``
  steps of all channels, with the channel count and window length of the data;
- ``image1``: the thermal/depth design, 16x16 patches of a one-channel 224x224 image;
- ``audio``: the audio design, overlapping 16x16 patches (stride 10) of the
  128-bin log-mel spectrogram of a 2 s clip.

A modality the base space already has (``bind --modality audio``) keeps the
base's own tower, architecture and all, and starts from its weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from .config import IMAGE_SIZE, ImageBindConfig
from .heads import cls_head, postprocessor
from .preprocessors import ImuPreprocessor, PatchPreprocessor, PatchStem
from .towers import Tower, build_tower
from .transformer import Trunk

INPUTS = ("timeseries", "image1", "audio")
# The ImageBind tower each input's design follows, and its scale (the official postprocessor's).
DESIGN_OF = {"timeseries": "imu", "image1": "thermal", "audio": "audio"}
_SCALES = {"timeseries": 5.0, "image1": 10.0, "audio": 20.0}
# Tower sizes (width, blocks, heads): "base" is ImageBind's own for the design.
SIZES: dict[str, dict[str, tuple[int, int, int]]] = {
    "base": {"timeseries": (512, 6, 8), "image1": (768, 12, 12), "audio": (768, 12, 12)},
    "small": {"timeseries": (256, 4, 4), "image1": (256, 4, 4), "audio": (256, 4, 4)},
    "tiny": {"timeseries": (64, 2, 2), "image1": (64, 2, 2), "audio": (64, 2, 2)},
}
_AUDIO = ImageBindConfig()  # the audio loader gives ImageBind's 128 x 204 spectrogram clips


@dataclass(frozen=True)
class NewTowerArch:
    """The architecture of a tower made for a new modality (what a space file records of it)."""

    input: str
    out_dim: int
    embed_dim: int
    num_blocks: int
    num_heads: int
    kernel_size: int = 0  # 0: the design's own (8 steps, 16 pixels, 16 spectrogram bins)
    channels: int = 1  # timeseries only
    steps: int = 0  # timeseries only: samples per window, a multiple of kernel_size
    scale: float = 0.0  # 0: the design's own

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise ValueError(f"tower input must be one of {', '.join(INPUTS)}, got {self.input!r}")
        if not self.kernel_size:
            object.__setattr__(self, "kernel_size", 8 if self.input == "timeseries" else 16)
        if not self.scale:
            object.__setattr__(self, "scale", _SCALES[self.input])
        for name in ("out_dim", "embed_dim", "num_blocks", "num_heads", "kernel_size", "channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"tower {name} must be a positive integer, got {value!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"tower embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})")
        if self.input == "timeseries" and (self.steps <= 0 or self.steps % self.kernel_size):
            raise ValueError(f"tower steps ({self.steps}) must be a positive multiple of kernel_size "
                             f"({self.kernel_size})")

    @classmethod
    def sized(cls, input: str, size: str, out_dim: int, **data: Any) -> NewTowerArch:
        """The design for ``input`` at a named size ("base", "small", "tiny")."""
        if size not in SIZES:
            raise ValueError(f"tower size must be one of {', '.join(SIZES)}, got {size!r}")
        width, blocks, heads = SIZES[size][input]
        return cls(input, out_dim, width, blocks, heads, **data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NewTowerArch:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown tower field(s): {', '.join(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def num_tokens(self) -> int:
        if self.input == "timeseries":
            return self.steps // self.kernel_size + 1
        if self.input == "image1":
            return (IMAGE_SIZE // self.kernel_size) ** 2 + 1
        mel, frames, stride = _AUDIO.audio_num_mel_bins, _AUDIO.audio_target_len, _AUDIO.audio_stride
        return ((mel - self.kernel_size) // stride + 1) * ((frames - self.kernel_size) // stride + 1) + 1


def build_new_tower(name: str, arch: NewTowerArch, attention: str = "sdpa") -> Tower:
    """A randomly initialised tower of ``arch`` for the modality ``name``."""
    dim = arch.embed_dim
    if arch.input == "timeseries":
        pre: nn.Module = ImuPreprocessor(dim, arch.channels, arch.kernel_size, arch.num_tokens)
    elif arch.input == "image1":
        pre = PatchPreprocessor("rgbt_stem", PatchStem(dim, 1, arch.kernel_size, arch.kernel_size),
                                arch.num_tokens, dim)
    else:
        pre = PatchPreprocessor("rgbt_stem", PatchStem(dim, 1, arch.kernel_size, _AUDIO.audio_stride),
                                arch.num_tokens, dim)
    trunk = Trunk(dim, arch.num_blocks, arch.num_heads, add_bias_kv=True, pre_norm=False, attention=attention)
    head = cls_head(dim, arch.out_dim, with_dropout=arch.input == "timeseries")
    return Tower(name, pre, trunk, head, postprocessor(arch.scale))


def build_base_tower(tower: str, config: dict[str, Any], attention: str = "sdpa") -> Tower:
    """A tower of the base ImageBind architecture ``config`` (a fine-tuned modality keeps its design)."""
    return build_tower(tower, ImageBindConfig.from_dict(config), attention)


def build_tower_of(name: str, arch: dict[str, Any], attention: str = "sdpa") -> Tower:
    """The (random) tower a bound space's ``arch`` describes: a new design, or the base's own."""
    fields = {k: v for k, v in arch.items() if k != "design"}
    if arch.get("design") == "new":
        return build_new_tower(name, NewTowerArch.from_dict(fields), attention)
    if set(fields) != {"tower", "config"}:
        raise ValueError('an "imagebind" tower arch needs exactly "tower" and "config"')
    return build_base_tower(fields["tower"], fields["config"], attention)


def rows_per_pass(tower: Tower) -> int:
    """Rows of one CPU pass through the tower: about TOKENS_PER_PASS tokens (see ``model.embed``)."""
    from .model import TOKENS_PER_PASS

    tokens = tower.preprocessor.pos_embed.shape[1] if hasattr(tower.preprocessor, "pos_embed") else \
        tower.preprocessor.pos_embedding_helper.pos_embed.shape[1]
    return max(1, TOKENS_PER_PASS // int(tokens))


def embed_items(tower: Tower, rows: Any, counts: list[int] | None = None) -> Any:
    """The tower's (items, out_dim) unit embeddings of ``rows`` (its input, one row per clip): with
    ``counts``, item i is the mean of its counts[i] consecutive rows' scaled outputs, as ImageBind
    averages an input's clips. Differentiable (the caller chooses no_grad or not)."""
    import torch

    n = int(rows.shape[0])
    if counts is not None and sum(counts) != n:
        raise ValueError(f"counts add up to {sum(counts)}, but there are {n} rows")
    step = rows_per_pass(tower) if tower.device.type == "cpu" and not torch.is_grad_enabled() else n
    out = tower(rows) if n <= step else torch.cat([tower(rows[i:i + step]) for i in range(0, n, step)])
    if counts is not None and any(c != 1 for c in counts):
        out = torch.stack([part.mean(dim=0) for part in torch.split(out, counts)])
    return torch.nn.functional.normalize(out.float(), dim=-1)
