"""ImageBind (all six towers) in plain PyTorch, loading the official checkpoint as is.

Written from public facts about the architecture and checked against
reference outputs; no official code is used. The released weights
(imagebind_huge.pth) are licensed CC BY-NC-SA 4.0.

Layout: ``config`` (constructor arguments), ``attention`` (fused/plain
self-attention), ``transformer`` (blocks and trunk), ``preprocessors``
(stems), ``heads`` (heads and scaling), ``towers`` (one modality assembled),
``checkpoint`` (reading and validating tensors), ``inputs`` (input shape
checks) and ``model`` (lazy model and loader).
"""

from .config import MODALITIES, ImageBindConfig
from .inputs import INPUT_KINDS
from .model import ImageBindModel, load_imagebind
from .towers import Tower

__all__ = ["INPUT_KINDS", "MODALITIES", "ImageBindConfig", "ImageBindModel", "Tower", "load_imagebind"]
