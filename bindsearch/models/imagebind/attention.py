"""Multi-head self-attention that loads ``nn.MultiheadAttention`` weights as they are stored.

The checkpoint keeps the attention weights in ``nn.MultiheadAttention``'s
layout: one fused ``in_proj_weight``/``in_proj_bias`` for query, key and
value, an ``out_proj`` Linear and, in the audio, depth, thermal and IMU
trunks, learned ``bias_k``/``bias_v``. The module below owns parameters of
exactly those names and computes the same function with batch-first tensors.

``bias_k``/``bias_v`` are already in the projected space: they form one
extra key/value token appended after the sequence's own keys and values.
Every query can attend to it, and it produces no output row of its own.

Two kernels compute the attention itself:

- ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention``, which
  picks a fused kernel (flash, memory-efficient, cuDNN or a CPU one).
- ``"plain"``: an explicit ``softmax(Q K^T / sqrt(d) + mask) V``, as
  ``nn.MultiheadAttention`` computes it: a baseline for benchmarks and a
  cross-check of the fused path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_KINDS = ("sdpa", "plain")


def check_attention_kind(kind: str) -> str:
    if kind not in ATTENTION_KINDS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION_KINDS)}, got {kind!r}")
    return kind


class SelfAttention(nn.Module):
    """Self-attention over batch-first tokens ``(B, L, E)`` with ``nn.MultiheadAttention`` parameter names."""

    def __init__(self, embed_dim: int, num_heads: int, add_bias_kv: bool, attention: str = "sdpa") -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.attention = check_attention_kind(attention)
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim))
        if add_bias_kv:
            self.bias_k = nn.Parameter(torch.empty(1, 1, embed_dim))
            self.bias_v = nn.Parameter(torch.empty(1, 1, embed_dim))
        else:
            self.bias_k = self.bias_v = None
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random starting values, for towers used without a checkpoint (tests, demos)."""
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            nn.init.normal_(self.bias_k, std=0.02)
            nn.init.normal_(self.bias_v, std=0.02)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        """``x``: (B, L, E). ``attn_mask``: an additive float (L, L) mask. ``is_causal``: mask the future instead."""
        batch, length, _ = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        if self.bias_k is not None:
            # One learned key/value token after the sequence; a mask gets a zero
            # column for it, so that every query may attend to it.
            k = torch.cat([k, self.bias_k.expand(batch, 1, -1)], dim=1)
            v = torch.cat([v, self.bias_v.expand(batch, 1, -1)], dim=1)
            if is_causal:
                attn_mask = _causal_mask(length, x.device, x.dtype)
                is_causal = False
            if attn_mask is not None:
                attn_mask = F.pad(attn_mask, (0, 1))
        if attn_mask is not None:
            attn_mask = attn_mask.to(q.dtype)
        q, k, v = (self._split_heads(t) for t in (q, k, v))
        if self.attention == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
        else:
            out = _plain_attention(q, k, v, attn_mask, is_causal)
        out = out.transpose(1, 2).reshape(batch, length, self.embed_dim)
        return self.out_proj(out)

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        # (B, S, E) -> (B, H, S, d)
        return t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
            f"bias_kv={self.bias_k is not None}, attention={self.attention!r}"
        )


def _causal_mask(length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask: 0 on and below the diagonal, -inf above (a query never sees later tokens)."""
    return torch.full((length, length), float("-inf"), device=device, dtype=dtype).triu(1)


def _plain_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None,
    is_causal: bool,
) -> torch.Tensor:
    """Unfused reference: materialises the full (L, S) score matrix per head."""
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)
    if is_causal:
        attn_mask = _causal_mask(q.shape[-2], q.device, q.dtype)
    if attn_mask is not None:
        scores = scores + attn_mask
    return scores.softmax(dim=-1) @ v
