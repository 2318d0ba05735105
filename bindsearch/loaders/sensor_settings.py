"""Settings of the depth, thermal and IMU loaders, in a module that imports neither torch nor Pillow.

A space's fingerprint includes these settings, so a space file is checked by
parsing them; keeping the classes apart from the loaders (``loaders.depth``,
``loaders.thermal``, ``loaders.imu``, which re-export them under the same
names and document what each constant does) lets that check, and so a
re-index with nothing to embed, run without importing the model code.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# Units a timestamp column of an IMU file may be in, as seconds per unit.
TIMESTAMP_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def settings_from_dict(cls: type[T], data: Mapping[str, Any] | None) -> T:
    """An instance of the frozen dataclass ``cls`` from a mapping; missing keys keep their defaults.

    Raises ValueError naming any unknown keys (and listing the known ones),
    and whatever ValueError the class's own checks raise for bad values.
    """
    if data is None:
        return cls()
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls.__name__}: expected a mapping of settings, got {type(data).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ValueError(
            f"{cls.__name__}: unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
            f" (known: {', '.join(known)})"
        )
    return cls(**dict(data))


def check_number(owner: str, name: str, value: Any, *, positive: bool = False, integer: bool = False) -> None:
    """Raise ValueError unless ``value`` is a finite real number (positive / integral when asked)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    if integer and int(value) != value:
        raise ValueError(f"{owner}: {name} must be a whole number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{owner}: {name} must be positive, got {value!r}")


@dataclass(frozen=True)
class DepthSettings:
    """Constants of the depth -> model input conversion (see ``loaders.depth``).

    focal_length_px: focal length of the depth camera, in pixels (518.857901).
    baseline_m: stereo / projector baseline, in metres (0.075).
    max_disparity: disparities are clamped to [0, max_disparity] pixels and divided by it (75.0).
    mean, std: standardisation of the normalised disparity, (x - mean) / std (0.0418, 0.0295).
    """

    focal_length_px: float = 518.857901
    baseline_m: float = 0.075
    max_disparity: float = 75.0
    mean: float = 0.0418
    std: float = 0.0295

    def __post_init__(self) -> None:
        for name in ("focal_length_px", "baseline_m", "max_disparity", "std"):
            check_number("DepthSettings", name, getattr(self, name), positive=True)
        check_number("DepthSettings", "mean", self.mean)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DepthSettings:
        """Settings from a mapping (a space file's "depth" object); unknown keys raise ValueError."""
        return settings_from_dict(cls, data)


@dataclass(frozen=True)
class ThermalSettings:
    """Standardisation of thermal intensities in [0, 1]: ``(x - mean) / std`` (defaults 0.0 and 1.0: unchanged)."""

    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        check_number("ThermalSettings", "mean", self.mean)
        check_number("ThermalSettings", "std", self.std, positive=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ThermalSettings:
        """Settings from a mapping (a space file's "thermal" object); unknown keys raise ValueError."""
        return settings_from_dict(cls, data)


@dataclass(frozen=True)
class ImuSettings:
    """Constants of the IMU -> model input conversion (see ``loaders.imu``).

    sample_rate_hz: rate of files without a timestamp column (200.0).
    target_rate_hz: rate the signal is resampled to before windowing (200.0).
    num_clips: at most this many 2000-sample windows per recording (3).
    timestamp_unit: unit of a timestamp column: "auto", "s", "ms", "us" or "ns" ("auto").
    """

    sample_rate_hz: float = 200.0
    target_rate_hz: float = 200.0
    num_clips: int = 3
    timestamp_unit: str = "auto"

    def __post_init__(self) -> None:
        check_number("ImuSettings", "sample_rate_hz", self.sample_rate_hz, positive=True)
        check_number("ImuSettings", "target_rate_hz", self.target_rate_hz, positive=True)
        check_number("ImuSettings", "num_clips", self.num_clips, positive=True, integer=True)
        if self.timestamp_unit not in ("auto", *TIMESTAMP_UNITS):
            raise ValueError(
                f"ImuSettings: timestamp_unit must be one of auto, {', '.join(TIMESTAMP_UNITS)};"
                f" got {self.timestamp_unit!r}"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ImuSettings:
        """Settings from a mapping (a space file's "imu" object); unknown keys raise ValueError."""
        return settings_from_dict(cls, data)
