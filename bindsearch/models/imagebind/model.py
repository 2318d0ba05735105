"""ImageBind with lazy towers: only the modalities a process uses are built and read.

    from bindsearch.models.imagebind import load_imagebind

    model = load_imagebind("imagebind_huge.pth", modalities=["text"])
    vectors = model.embed_unit("text", token_ids)   # (B, 1024) float32 unit rows

The state_dict of an ImageBindModel uses the official key names
(``modality_trunks.text.blocks.0.attn.in_proj_weight``, ...), so the released
checkpoint loads without conversion. Its licence is CC BY-NC-SA 4.0.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .attention import SelfAttention, check_attention_kind
from .checkpoint import read_checkpoint, tower_state
from .config import MODALITIES, ImageBindConfig
from .inputs import TOWER_OF, check_kind, to_tower_input
from .precision import set_matmul_dtype
from .towers import Tower, build_tower

# On a CPU, rows go through a tower about this many tokens at a time (16 images of 257 tokens). The activations
# of a larger pass outgrow the caches, and the elementwise work between the matrix products (norms, GELU,
# residual sums) then waits on memory: on 2 cores, mid-size towers, 48 audio clips ran 15 % faster in fp32 and
# 38 % in bf16 than in one pass, 60 video views 21 % and 30 %. A GPU takes all rows in one pass: it wants them.
TOKENS_PER_PASS = 4096

_DTYPES = {
    "fp32": torch.float32, "float32": torch.float32,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
}  # fmt: skip


class ImageBindModel(nn.Module):
    """The six ImageBind towers, each built on first use.

    Constructing the model allocates nothing. ``tower(m)`` builds tower ``m``
    with random weights (tests, demos); ``load_tower``/``load_checkpoint``
    build it directly from checkpoint tensors. ``attention`` picks the kernel
    of every attention layer: ``"sdpa"`` (fused, the default) or ``"plain"``
    (explicit softmax, a benchmark baseline); both compute the same function.
    """

    def __init__(self, config: ImageBindConfig | Mapping[str, Any] | None = None, *, attention: str = "sdpa") -> None:
        super().__init__()
        if config is None:
            config = ImageBindConfig()
        elif not isinstance(config, ImageBindConfig):
            config = ImageBindConfig.from_dict(config)
        self.config = config
        self.attention = check_attention_kind(attention)
        # The official state_dict groups parts by kind, then by modality.
        self.modality_preprocessors = nn.ModuleDict()
        self.modality_trunks = nn.ModuleDict()
        self.modality_heads = nn.ModuleDict()
        self.modality_postprocessors = nn.ModuleDict()
        self._towers: dict[str, Tower] = {}
        self.eval()

    # -- towers ----------------------------------------------------------------

    @property
    def built_modalities(self) -> tuple[str, ...]:
        """Towers built so far, in the official order."""
        return tuple(m for m in MODALITIES if m in self._towers)

    def is_built(self, modality: str) -> bool:
        return _tower_name(modality) in self._towers

    def tower(self, modality: str) -> Tower:
        """The tower of ``modality`` ("vision" or "image"/"video", "text", ...), built with random weights if new."""
        name = _tower_name(modality)
        if name not in self._towers:
            self._install(build_tower(name, self.config, self.attention).requires_grad_(False))
        return self._towers[name]

    def load_tower(
        self,
        modality: str,
        state_dict: Mapping[str, torch.Tensor],
        *,
        source: str = "state_dict",
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
    ) -> Tower:
        """(Re)builds one tower from the official-format ``state_dict`` (strict; ValueError on mismatch).

        The tower is built on the meta device and takes the checkpoint's
        tensors as its own, so nothing is allocated twice; with a memory-mapped
        checkpoint on CPU in float32 the weights stay file-backed.
        ``dtype`` (default float32) is the dtype of the trunk's matrix
        products; the rest of the tower runs in float32 (see ``precision``).
        """
        name = _tower_name(modality)
        with torch.device("meta"):
            tower = build_tower(name, self.config, self.attention)
        tensors = tower_state(state_dict, tower, source)
        tower.load_state_dict(tensors, strict=True, assign=True)
        tower.requires_grad_(False)
        tower.to(device=device, dtype=torch.float32)
        set_matmul_dtype(tower.trunk, _resolve_dtype(dtype))
        tower.eval()
        self._install(tower)
        return tower

    def load_checkpoint(
        self,
        path: str | os.PathLike[str],
        modalities: Iterable[str] | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
    ) -> ImageBindModel:
        """Loads the towers of ``modalities`` (default: all six) from an official checkpoint file."""
        names = _tower_names(modalities)
        state = read_checkpoint(path)
        for name in names:
            self.load_tower(name, state, source=os.fspath(path), device=device, dtype=dtype)
        return self

    def set_precision(self, dtype: torch.dtype | str | None, modalities: Iterable[str] | None = None) -> None:
        """Runs the trunk's matrix products of the built towers of ``modalities`` (default all) in
        ``dtype`` ("fp32", "bf16", "fp16"); the rest of each tower stays float32."""
        compute = _resolve_dtype(dtype)
        for name in _tower_names(modalities):
            if name in self._towers:
                set_matmul_dtype(self._towers[name].trunk, compute)

    def set_attention(self, attention: str) -> None:
        """Switches every built and future attention layer to ``"sdpa"`` or ``"plain"``."""
        self.attention = check_attention_kind(attention)
        for module in self.modules():
            if isinstance(module, SelfAttention):
                module.attention = attention

    def _install(self, tower: Tower) -> None:
        name = tower.modality
        tower.eval()
        self._towers[name] = tower
        self.modality_preprocessors[name] = tower.preprocessor
        self.modality_trunks[name] = tower.trunk
        self.modality_heads[name] = tower.head
        self.modality_postprocessors[name] = tower.postprocessor

    # -- embedding -------------------------------------------------------------

    def embed(self, kind: str, x: Any) -> torch.Tensor:
        """The official output for input kind ``kind``: float32 (B, out_embed_dim) on the tower's device.

        Rows are L2-normalised and multiplied by the modality's scale; inputs
        with a clip axis (audio, video) give the mean of their clips' scaled
        embeddings. Shapes: image (B, 3, 224, 224); video (B, clips, 3, 2,
        224, 224); text (B, 77) token ids; audio (B, clips, 1, 128, 204);
        depth and thermal (B, 1, 224, 224); IMU (B, 6, 2000).
        """
        name = TOWER_OF[check_kind(kind)]
        if name not in self._towers:
            raise ValueError(
                f"the ImageBind {name} tower is not loaded; load it with "
                f"load_imagebind(checkpoint, modalities=[{name!r}, ...]) (or model.tower({name!r}) for random weights)"
            )
        tower = self._towers[name]
        rows, clips = to_tower_input(kind, x, self.config)
        with torch.inference_mode():
            if rows.shape[0] == 0:
                return torch.zeros(0, self.config.out_embed_dim, device=tower.device)
            step = max(1, TOKENS_PER_PASS // self.config.num_tokens(name))
            if tower.device.type != "cpu" or rows.shape[0] <= step:
                out = tower(rows)
            else:
                out = torch.cat([tower(rows[i:i + step]) for i in range(0, rows.shape[0], step)])
            if kind in ("audio", "video"):  # mean of the clips' scaled embeddings
                out = out.view(-1, clips, out.shape[-1]).mean(dim=1)
        return out

    def embed_unit(self, kind: str, x: Any) -> np.ndarray:
        """Like ``embed``, as a float32 numpy array of unit-length rows (what a search index stores)."""
        out = self.embed(kind, x)
        return torch.nn.functional.normalize(out, dim=-1).cpu().numpy().astype(np.float32, copy=False)

    def embed_image(self, x: Any) -> torch.Tensor:
        """(B, 3, 224, 224) normalised RGB -> (B, D); the image is shown as 2 identical frames."""
        return self.embed("image", x)

    def embed_video(self, x: Any) -> torch.Tensor:
        """(B, clips, 3, 2, 224, 224) -> (B, D), mean over clips."""
        return self.embed("video", x)

    def embed_text(self, x: Any) -> torch.Tensor:
        """(B, 77) CLIP token ids -> (B, D)."""
        return self.embed("text", x)

    def embed_audio(self, x: Any) -> torch.Tensor:
        """(B, clips, 1, 128, 204) log-mel clips -> (B, D), mean over clips."""
        return self.embed("audio", x)

    def embed_depth(self, x: Any) -> torch.Tensor:
        """(B, 1, 224, 224) -> (B, D)."""
        return self.embed("depth", x)

    def embed_thermal(self, x: Any) -> torch.Tensor:
        """(B, 1, 224, 224) -> (B, D)."""
        return self.embed("thermal", x)

    def embed_imu(self, x: Any) -> torch.Tensor:
        """(B, 6, 2000) -> (B, D)."""
        return self.embed("imu", x)


def load_imagebind(
    checkpoint_path: str | os.PathLike[str],
    config: ImageBindConfig | Mapping[str, Any] | None = None,
    modalities: Iterable[str] | None = None,
    device: str | torch.device = "cpu",
    *,
    dtype: torch.dtype | str | None = None,
    attention: str = "sdpa",
) -> ImageBindModel:
    """An ImageBindModel with the towers of ``modalities`` (default all) loaded from an official checkpoint.

    ``config`` defaults to ImageBind-Huge. Only the requested towers are built
    and only their tensors are read from the memory-mapped file.
    """
    model = ImageBindModel(config, attention=attention)
    return model.load_checkpoint(checkpoint_path, modalities, device=device, dtype=dtype)


def _tower_name(modality: str) -> str:
    if modality in MODALITIES:
        return modality
    if modality in TOWER_OF:
        return TOWER_OF[modality]
    raise ValueError(
        f"unknown ImageBind modality {modality!r}; expected one of {', '.join(MODALITIES)} (or image, video)"
    )


def _tower_names(modalities: Iterable[str] | None) -> list[str]:
    if modalities is None:
        return list(MODALITIES)
    if isinstance(modalities, str):
        modalities = [modalities]
    names = {_tower_name(m) for m in modalities}
    return [m for m in MODALITIES if m in names]


def _resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        if dtype.lower() not in _DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(sorted(_DTYPES))}")
        return _DTYPES[dtype.lower()]
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be torch.float32, torch.bfloat16 or torch.float16, got {dtype}")
    return dtype
