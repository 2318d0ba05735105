"""Choice of torch device, shared by every space kind."""

from __future__ import annotations

import os
import re
import sys

from ..errors import UsageError

_DEVICE = re.compile(r"(cpu|cuda|mps)(?::(\d+))?")


def pick_device() -> str:
    """``BINDSEARCH_DEVICE`` if set (cpu, cuda, cuda:1, mps), else CUDA when present, else CPU."""
    env = os.environ.get("BINDSEARCH_DEVICE")
    if env:
        return check_device(env)
    if not gpu_may_be_present():
        return "cpu"  # (importing torch only to hear it say so takes seconds, before any worker can start)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# Device nodes of the drivers PyTorch's CUDA runs on: NVIDIA's, AMD's ROCm (also "cuda" to PyTorch), WSL's.
_GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def gpu_may_be_present() -> bool:
    """False only where no GPU can be: a Linux system without any GPU driver's device node. Elsewhere
    (macOS, Windows) only PyTorch can tell."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.path.exists(node) for node in _GPU_DEVICE_NODES)


def check_device(name: str) -> str:
    """``name`` as a device PyTorch can use here; UsageError, naming BINDSEARCH_DEVICE, when it cannot.

    The spelling is checked without PyTorch; a GPU device imports it to ask whether the GPU is there."""
    match = _DEVICE.fullmatch(name.strip().lower())
    if match is None:
        raise UsageError(f"BINDSEARCH_DEVICE={name!r} is not a device: write cpu, cuda, cuda:1 or mps")
    kind, number = match.group(1), match.group(2)
    if kind == "cpu":
        if number is not None:
            raise UsageError(f"BINDSEARCH_DEVICE={name!r}: the CPU has no number, write cpu")
        return kind
    import torch

    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"BINDSEARCH_DEVICE={name!r}: PyTorch sees no CUDA GPU here (use cpu)")
        if number is not None and int(number) >= count:
            raise UsageError(f"BINDSEARCH_DEVICE={name!r}: PyTorch sees {count} CUDA GPU(s), cuda:0 to "
                             f"cuda:{count - 1}")
    elif not torch.backends.mps.is_available():
        raise UsageError(f"BINDSEARCH_DEVICE={name!r}: PyTorch sees no Apple GPU (MPS) here (use cpu)")
    return match.group(0)
