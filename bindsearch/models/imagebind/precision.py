"""Mixed precision for a tower: the trunk's matrix products in bf16 or fp16, all else in float32.

Nearly all of a tower's work is the trunk's matrix products (attention
projections, attention itself, the MLPs), and those are what bf16 units
(AMX, AVX-512 BF16, a GPU's tensor cores) run several times faster. What
loses fidelity in 16 bits is elsewhere, and cheap, so it stays in float32:

- the residual stream: each block adds its output to a float32 sum, so the
  rounding of 32 (vision) blocks does not accumulate in 8 bits of mantissa;
- LayerNorms, which read that sum;
- the stem (the pixels, the spectrogram: the model's input is not rounded)
  and the positional embeddings;
- the head and the final normalisation and scaling.

The trunk's Linear weights are cast once, when the precision is set, and the
trunk runs under ``torch.autocast``, which casts each matrix product's input
to the low dtype (a no-op for weights already in it) and leaves the rest as is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from .attention import SelfAttention

LOW_DTYPES = (torch.bfloat16, torch.float16)


def set_matmul_dtype(trunk: nn.Module, dtype: torch.dtype) -> None:
    """Casts the weights of the trunk's matrix products to ``dtype`` (float32 undoes it); nothing else."""
    for module in trunk.modules():
        if isinstance(module, nn.Linear):
            module.to(dtype)
        elif isinstance(module, SelfAttention):
            module.in_proj_weight.data = module.in_proj_weight.data.to(dtype)
            module.in_proj_bias.data = module.in_proj_bias.data.to(dtype)


def matmul_dtype(trunk: nn.Module) -> torch.dtype:
    """The dtype the trunk's matrix products run in."""
    return next(m for m in trunk.modules() if isinstance(m, SelfAttention)).in_proj_weight.dtype


@contextlib.contextmanager
def trunk_precision(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Runs the block in ``dtype``'s autocast on ``device`` (nothing for float32)."""
    if dtype not in LOW_DTYPES:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Float32 inside the block, even within an autocast region someone else opened."""
    with torch.autocast(device.type, enabled=False):
        yield
