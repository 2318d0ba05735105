"""The trunk shared by all towers: a stack of pre-norm transformer blocks.

Parameter names follow the checkpoint: ``blocks.N.{norm_1,attn,norm_2,mlp.fc1,mlp.fc2}``
and, for vision only, ``pre_transformer_layer.0`` (a LayerNorm applied to the
tokens before the first block). No trunk has a LayerNorm after its blocks:
the heads start with one.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import SelfAttention

# LayerNorm epsilon inside the blocks and before the vision trunk. Not
# recorded in the checkpoint; checked against the conformance fixture.
BLOCK_NORM_EPS = 1e-6
PRE_TRANSFORMER_NORM_EPS = 1e-6


class Mlp(nn.Module):
    """Linear, exact (erf) GELU, Linear, with a 4x wider hidden layer."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm residual block: ``x + attn(norm_1(x))``, then ``x + mlp(norm_2(x))``.

    Drop-path (stochastic depth) only acts in training, so it is left out.
    """

    def __init__(self, dim: int, num_heads: int, add_bias_kv: bool, attention: str) -> None:
        super().__init__()
        self.attn = SelfAttention(dim, num_heads, add_bias_kv=add_bias_kv, attention=attention)
        self.norm_1 = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
        self.mlp = Mlp(dim, 4 * dim)
        self.norm_2 = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.norm_1(x), attn_mask=attn_mask, is_causal=is_causal)
        return x + self.mlp(self.norm_2(x))


class Trunk(nn.Module):
    """``blocks`` over batch-first tokens (B, L, D), optionally after a LayerNorm (vision)."""

    def __init__(
        self,
        dim: int,
        num_blocks: int,
        num_heads: int,
        *,
        add_bias_kv: bool,
        pre_norm: bool,
        attention: str,
    ) -> None:
        super().__init__()
        # A Sequential so that the LayerNorm's keys read "pre_transformer_layer.0.*".
        self.pre_transformer_layer = (
            nn.Sequential(nn.LayerNorm(dim, eps=PRE_TRANSFORMER_NORM_EPS)) if pre_norm else nn.Identity()
        )
        self.blocks = nn.ModuleList(Block(dim, num_heads, add_bias_kv, attention) for _ in range(num_blocks))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        x = self.pre_transformer_layer(x)
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask, is_causal=is_causal)
        return x
