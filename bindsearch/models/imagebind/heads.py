"""Heads (trunk tokens -> one vector in the shared space) and postprocessors (scaling).

Layouts follow the checkpoint's indices:

- vision, audio, depth, thermal: ``0`` LayerNorm, ``1`` pick the cls token,
  ``2`` Linear without bias;
- IMU: the same with a dropout at ``2`` (inactive at inference), Linear at ``3``;
- text: ``proj.0`` LayerNorm, ``proj.1`` Linear without bias, applied to the
  token at the end-token position of each row.

A postprocessor L2-normalises and, except for vision, multiplies by
``exp(log_logit_scale)`` (``1.log_logit_scale`` in the checkpoint).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# LayerNorm epsilon of the heads. Not recorded in the checkpoint; checked
# against the conformance fixture.
HEAD_NORM_EPS = 1e-6


class SelectToken(nn.Module):
    """Keeps one token of every sequence: (B, L, D) -> (B, D)."""

    def __init__(self, index: int = 0) -> None:
        super().__init__()
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.index]


def cls_head(dim: int, out_dim: int, with_dropout: bool = False) -> nn.Sequential:
    """LayerNorm, cls token, (dropout,) Linear: indices as in the checkpoint."""
    layers: list[nn.Module] = [nn.LayerNorm(dim, eps=HEAD_NORM_EPS), SelectToken(0)]
    if with_dropout:
        layers.append(nn.Dropout(0.5))  # only keeps the IMU Linear at index 3; no-op in eval
    layers.append(nn.Linear(dim, out_dim, bias=False))
    return nn.Sequential(*layers)


class TextHead(nn.Module):
    """Reads each row's token at ``select`` (its end token), then LayerNorm and Linear."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(dim, eps=HEAD_NORM_EPS), nn.Linear(dim, out_dim, bias=False))

    def forward(self, x: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(x.shape[0], device=x.device)
        return self.proj(x[rows, select])


class Normalize(nn.Module):
    """L2 normalisation of each row."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1)


class LogitScale(nn.Module):
    """Multiplies by ``exp(log_logit_scale)``, a scalar stored in the checkpoint."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        # A buffer, not a parameter: nothing here trains, and the key name is
        # the same either way.
        self.register_buffer("log_logit_scale", torch.tensor(math.log(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.log_logit_scale.exp().to(x.dtype)


def postprocessor(scale: float | None) -> nn.Sequential:
    """Normalize, then scale (index 1) unless ``scale`` is None (vision)."""
    if scale is None:
        return nn.Sequential(Normalize())
    return nn.Sequential(Normalize(), LogitScale(scale))
