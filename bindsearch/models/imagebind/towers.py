"""One tower per modality: preprocessor, trunk, head and postprocessor, built on its own.

Building a tower touches nothing of the other five, which is what lets a
process that only embeds text skip the 630 M-parameter vision trunk.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import (
    DEPTH_CHANNELS,
    FIXED_SCALES,
    IMAGE_CHANNELS,
    IMU_CHANNELS,
    MODALITIES,
    TEXT_CONTEXT,
    TEXT_INITIAL_SCALE,
    TEXT_VOCAB,
    THERMAL_CHANNELS,
    ImageBindConfig,
)
from .heads import TextHead, cls_head, postprocessor
from .precision import full_precision, matmul_dtype, trunk_precision
from .preprocessors import (
    ImuPreprocessor,
    PatchPreprocessor,
    PatchStem,
    TextPreprocessor,
    VideoStem,
)
from .transformer import Trunk

# Where each part of a tower lives in the official state_dict:
# "<group>.<modality>.<rest of the key>".
PART_GROUPS = {
    "preprocessor": "modality_preprocessors",
    "trunk": "modality_trunks",
    "head": "modality_heads",
    "postprocessor": "modality_postprocessors",
}

# Trunks whose attention learns an extra key/value token (bias_k/bias_v):
# read off the checkpoint, where only these trunks store them.
_BIAS_KV = {"vision": False, "text": False, "audio": True, "depth": True, "thermal": True, "imu": True}


class Tower(nn.Module):
    """Raw input tensor (already in the tower's layout) -> the official scaled embedding."""

    def __init__(
        self,
        modality: str,
        preprocessor: nn.Module,
        trunk: Trunk,
        head: nn.Module,
        postprocessor: nn.Module,
    ) -> None:
        super().__init__()
        self.modality = modality
        self.preprocessor = preprocessor
        self.trunk = trunk
        self.head = head
        self.postprocessor = postprocessor

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype of the trunk's matrix products (see ``precision``); everything else is float32."""
        return matmul_dtype(self.trunk)

    @property
    def device(self) -> torch.device:
        return self.trunk.blocks[0].attn.in_proj_weight.device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns float32 rows: L2-normalised, times the modality's scale."""
        device = self.device
        x = x.to(device)
        if x.is_floating_point():
            x = x.float()
        with full_precision(device):
            prepared = self.preprocessor(x)
        with trunk_precision(device, self.compute_dtype):
            tokens = self.trunk(prepared.tokens, attn_mask=prepared.attn_mask, is_causal=prepared.is_causal)
        with full_precision(device):
            tokens = tokens.float()
            embedding = self.head(tokens) if prepared.select is None else self.head(tokens, prepared.select)
            return self.postprocessor(embedding)

    def official_key(self, key: str) -> str:
        """This tower's ``part.rest`` state_dict key -> the official checkpoint key."""
        part, _, rest = key.partition(".")
        return f"{PART_GROUPS[part]}.{self.modality}.{rest}"


def build_tower(modality: str, config: ImageBindConfig, attention: str = "sdpa") -> Tower:
    """Builds one tower with random weights (call under ``torch.device('meta')`` to allocate nothing)."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown ImageBind modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    dim = config.embed_dim(modality)
    num_tokens = config.num_tokens(modality)
    if modality == "vision":
        stem = VideoStem(dim, config.kernel_size, config.video_frames, IMAGE_CHANNELS)
        pre: nn.Module = PatchPreprocessor("rgbt_stem", stem, num_tokens, dim)
    elif modality == "text":
        pre = TextPreprocessor(dim, TEXT_CONTEXT, TEXT_VOCAB)
    elif modality == "audio":
        stem = PatchStem(dim, 1, config.audio_kernel_size, config.audio_stride)
        pre = PatchPreprocessor("rgbt_stem", stem, num_tokens, dim)
    elif modality == "depth":
        stem = PatchStem(dim, DEPTH_CHANNELS, config.depth_kernel_size, config.depth_kernel_size)
        pre = PatchPreprocessor("depth_stem", stem, num_tokens, dim)
    elif modality == "thermal":
        stem = PatchStem(dim, THERMAL_CHANNELS, config.thermal_kernel_size, config.thermal_kernel_size)
        pre = PatchPreprocessor("rgbt_stem", stem, num_tokens, dim)
    else:
        pre = ImuPreprocessor(dim, IMU_CHANNELS, config.imu_kernel_size, num_tokens)

    trunk = Trunk(
        dim,
        config.num_blocks(modality),
        config.num_heads(modality),
        add_bias_kv=_BIAS_KV[modality],
        pre_norm=modality == "vision",
        attention=attention,
    )
    if modality == "text":
        head: nn.Module = TextHead(dim, config.out_embed_dim)
    else:
        head = cls_head(dim, config.out_embed_dim, with_dropout=modality == "imu")
    scale = None if modality == "vision" else TEXT_INITIAL_SCALE if modality == "text" else FIXED_SCALES[modality]
    return Tower(modality, pre, trunk, head, postprocessor(scale))
