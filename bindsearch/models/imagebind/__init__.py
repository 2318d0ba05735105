"""ImageBind (all six towers) in plain PyTorch, loading the official checkpoint as is.

Written from public facts about the architecture and checked against
reference outputs; no official code is used. The released weights
(imagebind_huge.pth) are licensed CC BY-NC-SA 4.0.

Layout: ``config`` (constructor arguments), ``attention`` (fused/plain
self-attention), ``transformer`` (blocks and trunk), ``preprocessors``
(stems), ``heads`` (heads and scaling), ``towers`` (one modality assembled),
``checkpoint`` (reading and validating tensors), ``inputs`` (input shape
checks) and ``model`` (lazy model and loader).

Only ``config`` is free of torch, and only it is imported with the package:
the other names load their module (and torch) on first access, so that
checking a space's configuration (``from bindsearch.models.imagebind.config
import ...``) imports no model code.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .config import MODALITIES, ImageBindConfig

if TYPE_CHECKING:
    from .inputs import INPUT_KINDS
    from .model import ImageBindModel, load_imagebind
    from .towers import Tower

# Name -> submodule holding it; imported (with torch) on first access.
_LAZY = {"INPUT_KINDS": "inputs", "ImageBindModel": "model", "load_imagebind": "model", "Tower": "towers"}

__all__ = ["INPUT_KINDS", "MODALITIES", "ImageBindConfig", "ImageBindModel", "Tower", "load_imagebind"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
