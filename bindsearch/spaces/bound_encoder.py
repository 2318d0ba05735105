"""The encoder of a bound tower: the input kind's loader, then the tower ``bind`` trained."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import Encoder

if TYPE_CHECKING:
    from .bound import BoundSpace, TowerSpec

# Inputs whose prepared value has a leading clip axis (several clips or windows per file).
_CLIPPED = {"timeseries", "audio", "imu"}


class BoundEncoder(Encoder):
    """One modality of a bound space. A fine-tuned built-in modality reads its files with the base's own
    loader (and cuts long audio into clips as the base does); a new one with its input kind's."""

    def __init__(self, space: BoundSpace, tower: TowerSpec, base_encoder: Encoder | None) -> None:
        self.space = space
        self.tower = tower
        self.modality = tower.modality
        self.dim = space.dim
        self._base = base_encoder
        self._reader = make_reader(tower.input, tower.settings) if base_encoder is None else base_encoder.prepare
        self.embeds_clips = base_encoder is not None and base_encoder.embeds_clips

    def prepare(self, source: Any) -> Any:
        return self._reader(source)

    def embed_batch(self, prepared: Sequence[Any]) -> np.ndarray:
        import torch

        from ..models.imagebind.bound_tower import embed_items

        if len(prepared) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        module = self.space.tower_module(self.modality)
        tensors = [torch.as_tensor(p) for p in prepared]
        with torch.inference_mode():
            if self.tower.input in _CLIPPED:
                rows, counts = torch.cat(tensors), [int(t.shape[0]) for t in tensors]
            else:
                rows, counts = torch.stack(tensors), None
            return embed_items(module, rows.to(module.device), counts).cpu().numpy().astype(np.float32)

    # -- clips of long audio (a fine-tuned audio tower, as the base cuts them) --------------

    def duration(self, source: Any) -> float | None:
        return self._base.duration(source) if self.embeds_clips and self._base else super().duration(source)

    def prepare_clips(self, source: Any, clips: Sequence[tuple[float, float]]) -> Any:
        if self.embeds_clips and self._base:
            return self._base.prepare_clips(source, clips)
        return super().prepare_clips(source, clips)

    def embed_clips(self, prepared: Any) -> np.ndarray:
        import torch

        from ..models.imagebind.bound_tower import embed_items

        if not self.embeds_clips:
            return super().embed_clips(prepared)
        module = self.space.tower_module(self.modality)
        with torch.inference_mode():
            # (clips, 1, mel, frames): one row, so one vector, per clip.
            rows = torch.as_tensor(prepared).to(module.device)
            return embed_items(module, rows).cpu().numpy().astype(np.float32)


def make_reader(kind: str, settings: dict[str, Any]) -> Any:
    """The loader of a new tower's input kind (``prepare``): a file to the tower's input tensor."""
    if kind == "timeseries":
        from ..loaders.timeseries import SeriesSettings, load_series

        series = SeriesSettings.from_dict(settings)
        return lambda source: load_series(os.fspath(source), series)
    if kind == "image1":
        from ..loaders.sensor_settings import ThermalSettings
        from ..loaders.thermal import read_thermal, thermal_to_input

        image = ThermalSettings.from_dict(settings)
        return lambda source: thermal_to_input(read_thermal(os.fspath(source)), image)
    from ..preprocess.files import audio_file_to_input

    return lambda source: audio_file_to_input(os.fspath(source))

