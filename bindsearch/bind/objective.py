"""The numbers of binding: the symmetric InfoNCE loss, its temperature, the learning-rate schedule and
held-out recall. Small pure functions, tested against plain references."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# The temperature's start, as CLIP and ImageBind initialise it (tau = 0.07), and its ceiling (CLIP's 100).
INITIAL_TEMPERATURE = 0.07
MAX_LOGIT_SCALE = 100.0


def info_nce(x: Any, images: Any, logit_scale: Any) -> Any:
    """Symmetric InfoNCE of a batch of matched pairs: row i of ``x`` belongs with row i of ``images``.

    ``x``, ``images``: (B, D) unit rows (torch tensors); ``logit_scale``: 1 / temperature (a scalar
    tensor). The mean of the X->image and image->X cross-entropies over the B x B similarities.
    """
    import torch
    import torch.nn.functional as F

    if x.ndim != 2 or x.shape != images.shape:
        raise ValueError(f"expected two (B, D) batches of one shape, got {tuple(x.shape)} and {tuple(images.shape)}")
    logits = logit_scale * (x @ images.T)
    target = torch.arange(x.shape[0], device=x.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if total <= 0 or not 0 <= step <= total:
        raise ValueError(f"step {step} outside 0..{total}")
    if step < warmup:
        return peak * (step + 1) / warmup
    span = max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / span)))


def recall_at(queries: np.ndarray, gallery: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """The share of queries whose own match (gallery row i for query row i) ranks in the top k, per k.

    Ties count against the query (a match must score strictly above the rows it is ranked behind).
    """
    queries, gallery = np.asarray(queries, dtype=np.float64), np.asarray(gallery, dtype=np.float64)
    if queries.ndim != 2 or queries.shape != gallery.shape:
        raise ValueError(f"expected two (n, D) arrays of one shape, got {queries.shape} and {gallery.shape}")
    scores = queries @ gallery.T
    own = np.diag(scores)
    rank = (scores >= own[:, None]).sum(axis=1) - 1  # rows scoring at least as high, itself left out
    return {k: float((rank < k).mean()) for k in ks}


def chance_at(n: int, ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Recall@k of a random ranking of ``n`` gallery rows: k / n (at most 1)."""
    if n < 1:
        raise ValueError("a gallery needs at least one row")
    return {k: min(1.0, k / n) for k in ks}
