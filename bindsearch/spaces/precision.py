"""Which precision a space's models compute in: the hardware's fastest faithful one, unless asked.

bf16 runs a transformer's matrix products several times faster than float32 where the
processor has native bf16 units (AMX or AVX-512 BF16 on x86, BF16 on Arm, most CUDA GPUs
since Ampere) and gives the same vectors to a cosine of 0.9999 (the models keep norms, the
residual stream and the output in float32). Elsewhere bf16 is emulated and slower, so float32
stays the default there. ``BINDSEARCH_DTYPE``, then a space file's ``"precision"``, override.

The precision is not part of a space's fingerprint: vectors made in different precisions are
comparable, so one library may hold both.
"""

from __future__ import annotations

import functools
import os
import re

from ..errors import SpaceError, UsageError

PRECISIONS = ("fp32", "bf16", "fp16")
ENV = "BINDSEARCH_DTYPE"
_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}


def parse_precision(value: str) -> str | None:
    """``value`` as one of PRECISIONS ("auto" and "" are None: the hardware chooses); ValueError otherwise."""
    name = value.strip().lower()
    if name in ("", "auto"):
        return None
    name = _ALIASES.get(name, name)
    if name not in PRECISIONS:
        raise ValueError(f"{value!r} is not a precision: write fp32, bf16, fp16 or auto")
    return name


def check_precision_variable() -> str | None:
    """BINDSEARCH_DTYPE, checked (UsageError naming it): a command checks it before any work."""
    try:
        return parse_precision(os.environ.get(ENV, ""))
    except ValueError as exc:
        raise UsageError(f"{ENV}: {exc}") from None


def check_space_precision(value: object) -> str | None:
    """A space file's ``"precision"`` field, checked (SpaceError naming the field)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpaceError('"precision" must be "fp32", "bf16", "fp16" or "auto"')
    try:
        return parse_precision(value)
    except ValueError as exc:
        raise SpaceError(f'"precision": {exc}') from None


def choose_precision(device: str, from_space: str | None = None) -> str:
    """The precision for models on ``device``: BINDSEARCH_DTYPE, else the space's, else the hardware's best.

    Raises UsageError for a BINDSEARCH_DTYPE that is no precision, and for bf16 on a GPU without it."""
    wanted = check_precision_variable() or from_space
    if wanted is None:
        return default_precision(device)
    if wanted == "bf16" and device.startswith("cuda") and not _cuda_bf16(device):
        raise UsageError(f"this GPU has no bf16; use {ENV}=fp16 or fp32")
    return wanted


def default_precision(device: str) -> str:
    """bf16 on a CUDA GPU or CPU with native bf16, float32 elsewhere (Apple's MPS included)."""
    if device.startswith("cuda"):
        return "bf16" if _cuda_bf16(device) else "fp32"
    if device == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 products in hardware (read from /proc/cpuinfo; False where absent)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return native_bf16_in_cpuinfo(f.read())
    except OSError:
        return False


def native_bf16_in_cpuinfo(text: str) -> bool:
    """True when a ``flags`` (x86: amx_bf16 or avx512_bf16) or ``Features`` (Arm: bf16) line says so."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("flags", "features"):
            words = set(re.split(r"\s+", value.strip().lower()))
            return bool(words & {"amx_bf16", "avx512_bf16", "bf16"})
    return False


def _cuda_bf16(device: str) -> bool:
    import torch

    index = torch.device(device).index
    major, _ = torch.cuda.get_device_capability(index if index is not None else torch.cuda.current_device())
    return major >= 8  # Ampere and later have bf16 tensor cores; earlier GPUs emulate it
