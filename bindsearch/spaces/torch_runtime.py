"""Choice of torch device, shared by every space kind."""

from __future__ import annotations

import os


def pick_device() -> str:
    """``BINDSEARCH_DEVICE`` if set (cpu, cuda, cuda:1, mps), else CUDA when present, else CPU."""
    env = os.environ.get("BINDSEARCH_DEVICE")
    if env:
        return env
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
