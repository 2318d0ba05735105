"""The other side of each pair read into tower input, and the loader settings measured on it.

A new time-series modality takes its channel count, window length and
per-channel standardisation from the data it is bound on; a new one-channel
image modality its standardisation. The settings go into the space file, so
that every file embedded later is read the same way.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import MediaError
from .pairs import BadRow, Pair

# Windows of at most this many steps (the IMU design's 2000): a longer series gives several windows.
MAX_STEPS = 2000
NUM_CLIPS = 3

Progress = Callable[[int, int], None]


@dataclass
class OtherInputs:
    """Per usable pair, its prepared tower input; the pairs left out; the loader settings and arch data."""

    inputs: dict[int, Any] = field(default_factory=dict)  # pair row -> tensor
    bad: list[BadRow] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    arch_data: dict[str, Any] = field(default_factory=dict)


def series_shape(lengths: Sequence[int], kernel: int) -> int:
    """The window length of a time-series tower: the median length, rounded to a multiple of the kernel,
    between one kernel and MAX_STEPS."""
    if not lengths:
        raise ValueError("no series to measure")
    median = float(np.median(np.asarray(lengths)))
    steps = max(1, round(median / kernel)) * kernel
    return int(min(steps, MAX_STEPS - MAX_STEPS % kernel))


def channel_stats(arrays: Sequence[np.ndarray]) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation over every step of ``arrays`` ((T, C) each); a constant
    channel gets a spread of 1 (it is then only shifted)."""
    stacked = np.concatenate([np.asarray(a, dtype=np.float64) for a in arrays], axis=0)
    mean = stacked.mean(axis=0)
    std = stacked.std(axis=0)
    std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return [float(v) for v in mean], [float(v) for v in std]


def read_other_inputs(pairs: Sequence[Pair], kind: str, kernel: int,
                      prepare: Callable[[str], Any] | None = None, progress: Progress | None = None) -> OtherInputs:
    """Read every pair's other file. ``prepare``: a fine-tuned modality's own loader (else ``kind``'s)."""
    if prepare is not None:
        return _read_with(pairs, prepare, progress)
    if kind == "timeseries":
        return _read_series(pairs, kernel, progress)
    if kind == "image1":
        return _read_image1(pairs, progress)
    from ..preprocess.files import audio_file_to_input

    return _read_with(pairs, audio_file_to_input, progress)


def _read_with(pairs: Sequence[Pair], prepare: Callable[[str], Any], progress: Progress | None) -> OtherInputs:
    """Each pair's other file through ``prepare``; a file it cannot read is a bad row (reason said)."""
    out = OtherInputs()
    for i, pair in enumerate(pairs):
        try:
            out.inputs[pair.row] = prepare(pair.other)
        except MediaError as exc:
            out.bad.append(BadRow(pair.row, pair.other, exc.reason))
        if progress:
            progress(i + 1, len(pairs))
    return out


def _read_series(pairs: Sequence[Pair], kernel: int, progress: Progress | None) -> OtherInputs:
    import torch

    from ..loaders.timeseries import read_series, series_windows, standardise

    out = _read_with(pairs, read_series, progress)  # raw (steps, channels) arrays, prepared below
    values: dict[int, np.ndarray] = out.inputs
    out.inputs = {}
    if not values:
        return out
    # The channel count most files have is the modality's; a file with another is a bad row.
    channels = collections.Counter(v.shape[1] for v in values.values()).most_common(1)[0][0]
    paths = {p.row: p.other for p in pairs}
    for row in [r for r, v in values.items() if v.shape[1] != channels]:
        out.bad.append(BadRow(row, paths[row], f"has {values.pop(row).shape[1]} channels, the others {channels}"))
    steps = series_shape([v.shape[0] for v in values.values()], kernel)
    mean, std = channel_stats(list(values.values()))
    out.settings = {"channels": channels, "steps": steps, "num_clips": NUM_CLIPS, "mean": mean, "std": std}
    out.arch_data = {"channels": channels, "steps": steps}
    for row, v in values.items():
        out.inputs[row] = torch.from_numpy(series_windows(standardise(v, tuple(mean), tuple(std)), steps, NUM_CLIPS))
    return out


def _read_image1(pairs: Sequence[Pair], progress: Progress | None) -> OtherInputs:
    from ..loaders.sensor_settings import ThermalSettings
    from ..loaders.thermal import read_thermal, thermal_to_input

    out = _read_with(pairs, read_thermal, progress)  # raw intensities, standardised below
    intensities: dict[int, np.ndarray] = out.inputs
    out.inputs = {}
    if not intensities:
        return out
    flat = np.concatenate([v.ravel() for v in intensities.values()])
    mean, std = float(flat.mean()), float(flat.std())
    std = std if std > 1e-6 and math.isfinite(std) else 1.0
    out.settings = {"mean": mean, "std": std}
    settings = ThermalSettings(mean=mean, std=std)
    for row, v in intensities.items():
        out.inputs[row] = thermal_to_input(v, settings)
    return out
