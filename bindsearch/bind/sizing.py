"""Batches as large as memory allows: contrastive losses get better with more in-batch negatives."""

from __future__ import annotations

from typing import Any

MAX_BATCH = 1024
MEMORY_SHARE = 0.25  # of the memory free when training starts
# Few pairs in a few huge batches make few steps: an epoch has at least this many.
MIN_STEPS = 8


def activation_bytes(tokens: int, width: int, blocks: int, heads: int) -> int:
    """A rough upper bound on what one input row keeps for the backward pass, in bytes: per block about a
    dozen (tokens, width) float32 tensors (attention projections, MLP at 4x width, norms) and the
    attention weights (heads, tokens, tokens)."""
    return 4 * blocks * (16 * tokens * width + 2 * heads * tokens * tokens)


def auto_batch_size(tower: Any, train_pairs: int, device: str) -> int:
    """The largest batch whose activations fit in MEMORY_SHARE of the free memory, at most MAX_BATCH and
    at most 1/MIN_STEPS of the training pairs, and never below 2."""
    pre = tower.preprocessor
    pos = pre.pos_embed if hasattr(pre, "pos_embed") else pre.pos_embedding_helper.pos_embed
    tokens, width = int(pos.shape[1]), int(pos.shape[2])
    blocks = len(tower.trunk.blocks)
    heads = int(tower.trunk.blocks[0].attn.num_heads)
    per_row = activation_bytes(tokens, width, blocks, heads)
    free = _free_memory(device)
    fits = MAX_BATCH if free is None else max(2, int(free * MEMORY_SHARE // per_row))
    return max(2, min(MAX_BATCH, fits, train_pairs // MIN_STEPS))


def _free_memory(device: str) -> int | None:
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    from ..indexer.memory import available_memory

    return available_memory()
