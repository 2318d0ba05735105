"""Preprocessors: raw tensors to token sequences (stem, cls token, positional embedding).

Each preprocessor returns a ``Tokens`` record: the tokens for the trunk plus
what the trunk and head need to know about them (text's attention mask and
which token the head reads). Submodule and parameter names follow the
checkpoint (``rgbt_stem.proj.1.weight``, ``depth_stem.norm_layer.weight``,
``pos_embedding_helper.pos_embed``, ``imu_stem.proj.weight``,
``token_embedding.weight``, ``mask``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# LayerNorm epsilon of the patch stems (audio, depth, thermal, IMU). Not
# recorded in the checkpoint; checked against the conformance fixture.
STEM_NORM_EPS = 1e-5


@dataclass
class Tokens:
    """Output of a preprocessor.

    ``tokens``: (B, L, D). ``attn_mask``: additive (L, L) mask or None.
    ``is_causal``: the trunk should mask future tokens (used instead of
    ``attn_mask`` when that mask is exactly causal, so fused kernels apply).
    ``select``: per-row index of the token the head reads, or None for the cls
    token at index 0.
    """

    tokens: torch.Tensor
    attn_mask: torch.Tensor | None = None
    is_causal: bool = False
    select: torch.Tensor | None = None


def _prepend_cls(cls_token: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return torch.cat([cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)


class PositionalEmbedding(nn.Module):
    """Holds a learned ``pos_embed`` of shape (1, L, D) (the checkpoint's ``pos_embedding_helper``)."""

    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.empty(1, num_tokens, dim))
        nn.init.normal_(self.pos_embed, std=0.02)


class RepeatFrames(nn.Module):
    """Turns an image (B, C, H, W) into a clip of ``frames`` identical frames (B, C, T, H, W).

    The vision stem is a 3D convolution over pairs of frames; a still image is
    shown to it as a clip that does not move.
    """

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            x = x.unsqueeze(2)
        if x.shape[2] == 1 and self.frames > 1:
            x = x.expand(-1, -1, self.frames, -1, -1)
        return x


class VideoStem(nn.Module):
    """3D convolution over (time, height, width) patches, without bias or norm."""

    def __init__(self, dim: int, kernel: tuple[int, int, int], frames: int, channels: int) -> None:
        super().__init__()
        # A Sequential so that the convolution's key reads "proj.1.weight".
        self.proj = nn.Sequential(
            RepeatFrames(frames),
            nn.Conv3d(channels, dim, kernel_size=kernel, stride=kernel, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, t, h, w) -> (B, N, D)


class PatchStem(nn.Module):
    """2D convolution patches (no bias) followed by a LayerNorm over each patch token."""

    def __init__(self, dim: int, channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, kernel_size=kernel, stride=stride, bias=False)
        self.norm_layer = nn.LayerNorm(dim, eps=STEM_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_layer(self.proj(x).flatten(2).transpose(1, 2))


class PatchPreprocessor(nn.Module):
    """Stem patches, a cls token in front, plus learned positions: vision, audio, depth, thermal."""

    def __init__(self, stem_name: str, stem: nn.Module, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        nn.init.normal_(self.cls_token, std=0.02)
        self.stem_name = stem_name
        self.add_module(stem_name, stem)  # "rgbt_stem" or "depth_stem", as in the checkpoint
        self.pos_embedding_helper = PositionalEmbedding(num_tokens, dim)

    def forward(self, x: torch.Tensor) -> Tokens:
        tokens = _prepend_cls(self.cls_token, getattr(self, self.stem_name)(x))
        return Tokens(tokens + self.pos_embedding_helper.pos_embed)


class ImuStem(nn.Module):
    """Cuts (B, C, T) into windows of ``kernel`` steps; each window (all channels) is one token."""

    def __init__(self, dim: int, channels: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.proj = nn.Linear(channels * kernel, dim, bias=False)
        self.norm_layer = nn.LayerNorm(dim, eps=STEM_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, T) -> (B, C, T/k, k) -> (B, T/k, C, k) -> (B, T/k, C*k): a window's
        # features are channel-major, each channel's k steps together.
        windows = x.unfold(-1, self.kernel, self.kernel).transpose(1, 2).flatten(2)
        return self.norm_layer(self.proj(windows))


class ImuPreprocessor(nn.Module):
    """IMU windows, a cls token in front, plus learned positions (stored directly as ``pos_embed``)."""

    def __init__(self, dim: int, channels: int, kernel: int, num_tokens: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.empty(1, num_tokens, dim))
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        nn.init.normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=0.02)
        self.imu_stem = ImuStem(dim, channels, kernel)

    def forward(self, x: torch.Tensor) -> Tokens:
        return Tokens(_prepend_cls(self.cls_token, self.imu_stem(x)) + self.pos_embed)


class TextPreprocessor(nn.Module):
    """Token plus position embeddings; carries the causal attention mask as the checkpoint does.

    The mask is a stored buffer and is used as stored (an additive float mask).
    When it is exactly the standard causal mask (0 on and below the diagonal,
    -inf above), the trunk is told ``is_causal`` instead, which lets fused
    attention kernels skip the masked half; the result is the same.
    """

    def __init__(self, dim: int, context: int, vocab: int) -> None:
        super().__init__()
        self.context = context
        self.pos_embed = nn.Parameter(torch.empty(1, context, dim))
        nn.init.normal_(self.pos_embed, std=0.01)
        self.token_embedding = nn.Embedding(vocab, dim)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.register_buffer("mask", _standard_causal_mask(context))
        self.mask_is_causal = True
        # Re-check the mask whenever a state_dict is loaded into this module.
        self.register_load_state_dict_post_hook(_after_load)

    def refresh_mask_kind(self) -> None:
        if self.mask.is_meta:
            return
        expected = _standard_causal_mask(self.context).to(self.mask.device)
        self.mask_is_causal = bool(torch.equal(self.mask.float(), expected))

    def forward(self, token_ids: torch.Tensor) -> Tokens:
        tokens = self.token_embedding(token_ids) + self.pos_embed
        # The head reads the end token, the largest id in the vocabulary, so
        # argmax finds it (the first one, if a row had several).
        select = token_ids.argmax(dim=-1)
        if self.mask_is_causal:
            return Tokens(tokens, is_causal=True, select=select)
        return Tokens(tokens, attn_mask=self.mask, select=select)


def _after_load(module: TextPreprocessor, _incompatible_keys: object) -> None:
    module.refresh_mask_kind()


def _standard_causal_mask(size: int) -> torch.Tensor:
    return torch.full((size, size), float("-inf")).triu(1)
