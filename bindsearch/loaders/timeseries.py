"""Time series of any sensor to the (clips, channels, steps) float32 input of a bound tower.

The input of a modality made with ``bindsearch bind --input timeseries``:
ImageBind's IMU design with the number of channels and the window length
taken from the data it was bound on, so the files are read as the IMU loader
reads them, without its six named channels:

- ``.csv``: a table, one numeric column per channel and one row per step
  (a header row, blank and ``#`` lines allowed; the separators, decimal commas
  and missing cells of ``loaders.imu``);
- ``.npy``, ``.npz`` (one array, or the one called ``series``): a 2-D array
  (steps, channels) or (channels, steps): the channel axis is the one whose
  length is the tower's channel count (the second if both are).

Missing values are filled per channel by linear interpolation (as for IMU).
With ``sample_rate_hz`` and ``target_rate_hz`` both set and different, the
signal is resampled linearly to the target rate. Each channel is then
standardised with the mean and spread measured on the bound data, and cut into
windows of ``steps`` samples as IMU recordings are: a shorter signal is padded
by repeating its last sample, a longer one gives up to ``num_clips`` windows
spread evenly over it, whose embeddings the encoder averages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import MediaError
from .imu import MAX_SAMPLES, _read_csv, fill_missing, window_starts
from .sensor_files import load_numeric_array, sniff_sensor_file
from .sensor_settings import check_number, settings_from_dict

_KINDS = {".npy": "npy", ".npz": "npz", ".csv": "csv"}
_MAX_ABS = 1e12  # as for IMU: beyond any sensor, short of the float32 overflow of the encoder
MAX_CHANNELS = 256


@dataclass(frozen=True)
class SeriesSettings:
    """How a bound time-series modality reads its files (written by ``bind`` from its data).

    channels: values per step. steps: samples per window (a multiple of the tower's kernel).
    num_clips: at most this many windows per file. mean, std: per-channel standardisation.
    sample_rate_hz, target_rate_hz: resample from the one to the other (both or neither).
    """

    channels: int = 1
    steps: int = 2000
    num_clips: int = 3
    mean: tuple[float, ...] = field(default_factory=tuple)
    std: tuple[float, ...] = field(default_factory=tuple)
    sample_rate_hz: float | None = None
    target_rate_hz: float | None = None

    def __post_init__(self) -> None:
        check_number("SeriesSettings", "channels", self.channels, positive=True, integer=True)
        check_number("SeriesSettings", "steps", self.steps, positive=True, integer=True)
        check_number("SeriesSettings", "num_clips", self.num_clips, positive=True, integer=True)
        if self.channels > MAX_CHANNELS:
            raise ValueError(f"SeriesSettings: at most {MAX_CHANNELS} channels, got {self.channels}")
        for name in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, name))
            object.__setattr__(self, name, values)
            if values and len(values) != self.channels:
                raise ValueError(f"SeriesSettings: {name} needs {self.channels} values, got {len(values)}")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"SeriesSettings: {name} must be finite numbers")
        if any(v <= 0 for v in self.std):
            raise ValueError("SeriesSettings: std must be positive")
        if (self.sample_rate_hz is None) != (self.target_rate_hz is None):
            raise ValueError("SeriesSettings: give both sample_rate_hz and target_rate_hz, or neither")
        for name in ("sample_rate_hz", "target_rate_hz"):
            if getattr(self, name) is not None:
                check_number("SeriesSettings", name, getattr(self, name), positive=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SeriesSettings:
        return settings_from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"channels": self.channels, "steps": self.steps, "num_clips": self.num_clips,
                               "mean": list(self.mean), "std": list(self.std)}
        if self.sample_rate_hz is not None:
            out["sample_rate_hz"], out["target_rate_hz"] = self.sample_rate_hz, self.target_rate_hz
        return out


# --- pure functions -------------------------------------------------------------------------------


def orient_series(array: np.ndarray, channels: int | None) -> np.ndarray:
    """A 2-D array to (steps, channels). Unknown ``channels`` (measuring new data): the shorter axis.

    Raises ValueError with a user-facing reason.
    """
    a = np.asarray(array)
    while a.ndim > 2 and 1 in a.shape:
        a = np.squeeze(a, axis=a.shape.index(1))
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"expected a (steps, channels) table, got an array of shape {np.shape(array)}")
    rows, cols = a.shape
    if channels is None:
        return a if cols <= rows else a.T
    if cols == channels:
        return a
    if rows == channels:
        return a.T
    raise ValueError(f"needs {channels} channel{'s' if channels != 1 else ''}, found {min(rows, cols)}")


def resample_linear(values: np.ndarray, rate_hz: float, target_hz: float) -> np.ndarray:
    """(T, C) samples ``1/rate_hz`` apart to the same span at ``target_hz`` (linear interpolation)."""
    if values.ndim != 2:
        raise ValueError(f"expected (steps, channels), got shape {values.shape}")
    if rate_hz == target_hz:
        return values
    times = np.arange(values.shape[0]) / rate_hz
    length = int(math.floor(times[-1] * target_hz + 1e-9)) + 1
    grid = np.arange(length) / target_hz
    return np.stack([np.interp(grid, times, values[:, c]) for c in range(values.shape[1])], axis=1)


def series_windows(values: np.ndarray, steps: int, num_clips: int) -> np.ndarray:
    """(T, C) -> (clips, C, steps) float32: padded by the last sample, or windows spread over a long signal."""
    if values.ndim != 2 or values.shape[0] < 1:
        raise ValueError(f"expected (steps >= 1, channels), got shape {values.shape}")
    length = values.shape[0]
    clips = [values[np.minimum(np.arange(start, start + steps), length - 1)].T
             for start in window_starts(length, num_clips, steps)]
    return np.ascontiguousarray(np.stack(clips), dtype=np.float32)


def standardise(values: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(T, C) values per channel minus ``mean``, over ``std`` (none given: as they are)."""
    if not mean:
        return values
    return (values - np.asarray(mean)) / np.asarray(std)


# --- files ----------------------------------------------------------------------------------------


def read_series(path: str, channels: int | None = None) -> np.ndarray:
    """A file's (steps, channels) float64 values, gaps filled; MediaError for a bad file."""
    kind = sniff_sensor_file(path, _KINDS, "a time series")
    if kind == "csv":
        table = _read_csv(path)
    else:
        table = load_numeric_array(path, name="series", max_elements=MAX_SAMPLES * 8, what="time series")
        if table.size == 0:
            raise MediaError(path, f"empty array (shape {table.shape})")
    if table.dtype.kind not in "iuf":
        raise MediaError(path, f"holds {table.dtype} values, not numbers")
    try:
        values = orient_series(table, channels).astype(np.float64)
        values = fill_missing(values, np.arange(values.shape[0], dtype=np.float64))
    except ValueError as exc:
        raise MediaError(path, str(exc)) from None
    if values.shape[1] > MAX_CHANNELS:
        raise MediaError(path, f"has {values.shape[1]} channels (at most {MAX_CHANNELS})")
    if float(np.abs(values).max()) > _MAX_ABS:
        raise MediaError(path, f"holds values too large for a sensor signal (|value| up to {np.abs(values).max():.3g})")
    return values


def load_series(path: str, settings: SeriesSettings) -> Any:
    """A time-series file to the (clips, channels, steps) float32 tensor; MediaError for a bad file."""
    import torch

    values = read_series(path, settings.channels)
    if settings.sample_rate_hz is not None:
        values = resample_linear(values, settings.sample_rate_hz, float(settings.target_rate_hz))
    return torch.from_numpy(series_windows(standardise(values, settings.mean, settings.std),
                                           settings.steps, settings.num_clips))
