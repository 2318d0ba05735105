"""Long audio and video as time windows: where the clips and windows of a file lie, and window vectors.

A long file is cut into clips of ``CLIP_SECONDS`` on a regular grid (the
clip length the ImageBind audio and video encoders take), each clip is
embedded once, and a window is the normalised mean of the unit vectors of
the clips it covers: the same pooling the model applies to the clips of one
file. Windows overlap at no extra model cost, since they share clips.

Every function here is pure: seconds and arrays in, seconds and arrays out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .modality import Modality
from .vectors import l2_normalize

# The modalities whose long files are cut into time windows.
WINDOWED = frozenset({Modality.AUDIO, Modality.VIDEO})
CLIP_SECONDS = 2.0
# A trailing piece of the file shorter than a clip is embedded as a shorter clip if it lasts this long.
MIN_TAIL_SECONDS = 0.5
# Longer windows than a day would find no moment worth the name (and their clip counts grow without bound).
MAX_WINDOW_SECONDS = 86400.0


@dataclass(frozen=True)
class WindowSettings:
    """How a library cuts long audio and video: windows of ``seconds``, one every ``hop`` seconds.

    Both are whole multiples of the clip length (2 s). ``seconds = 0`` turns
    windows off. A file gets windows when it is long enough for two.
    """

    seconds: float = 6.0
    hop: float = 2.0

    def __post_init__(self) -> None:
        for name in ("seconds", "hop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"window {name} must be a number of seconds, got {value!r}")
            if value > MAX_WINDOW_SECONDS:
                raise ValueError(f"window {name} must be at most {MAX_WINDOW_SECONDS:g} s (a day), got {value:g}")
        if self.seconds == 0:
            return
        for name in ("seconds", "hop"):
            value = getattr(self, name)
            if value <= 0 or abs(value / CLIP_SECONDS - round(value / CLIP_SECONDS)) > 1e-9:
                raise ValueError(
                    f"window {name} must be a positive multiple of {CLIP_SECONDS:g} s (the clip length), got {value:g}"
                )
        if self.hop > self.seconds:
            raise ValueError(f"the window hop ({self.hop:g} s) cannot be longer than the window ({self.seconds:g} s)")

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    @property
    def clips_per_window(self) -> int:
        return round(self.seconds / CLIP_SECONDS)

    @property
    def clips_per_hop(self) -> int:
        return round(self.hop / CLIP_SECONDS)

    def changed(self, seconds: float | None = None, hop: float | None = None) -> WindowSettings:
        """These settings with a new window length and/or hop; ``seconds=0`` turns windows off.

        A new length without a hop keeps the hop if it still fits, else hops by a whole window.
        """
        if seconds == 0:
            return OFF
        base = self if self.enabled else WindowSettings()
        seconds = base.seconds if seconds is None else seconds
        if hop is None:
            hop = base.hop if base.hop <= seconds else seconds
        return WindowSettings(seconds=seconds, hop=hop)

    def to_dict(self) -> dict[str, Any]:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowSettings:
        unknown = set(data) - {"seconds", "hop"}
        if unknown:
            raise ValueError(f"unknown window setting(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    def describe(self) -> str:
        if not self.enabled:
            return "off"
        return f"{self.seconds:g} s every {self.hop:g} s"


OFF = WindowSettings(seconds=0.0, hop=0.0)


def clip_grid(duration: float, clip_seconds: float = CLIP_SECONDS) -> list[tuple[float, float]]:
    """(start, end) in seconds of the clips tiling ``duration`` seconds; a short tail is a shorter clip."""
    if not duration >= 0:  # also refuses NaN
        raise ValueError(f"duration must be a non-negative number, got {duration}")
    full = int(math.floor(duration / clip_seconds + 1e-9))
    clips = [(i * clip_seconds, (i + 1) * clip_seconds) for i in range(full)]
    tail_start = full * clip_seconds
    if duration - tail_start >= MIN_TAIL_SECONDS:
        clips.append((tail_start, float(duration)))
    return clips


def window_spans(num_clips: int, per_window: int, hop: int) -> list[tuple[int, int]]:
    """Clip index ranges [first, stop) of the windows over ``num_clips`` clips.

    Windows start every ``hop`` clips; the last one is moved back to end on the
    last clip, so that every clip lies in a window. Fewer clips than two windows
    need gives no windows (the file-level vector covers such a file).
    """
    if per_window <= 0 or hop <= 0 or hop > per_window:
        raise ValueError(f"need 0 < hop <= per_window, got hop {hop}, per_window {per_window}")
    if num_clips < per_window + hop:
        return []
    spans = [(start, start + per_window) for start in range(0, num_clips - per_window + 1, hop)]
    if spans[-1][1] < num_clips:
        spans.append((num_clips - per_window, num_clips))
    return spans


Clip = tuple[float, float]
Span = tuple[int, int]


def file_windows(duration: float | None, settings: WindowSettings) -> tuple[list[Clip], list[Span]]:
    """The clips and the window spans of a file of ``duration`` seconds; empty when it gets no windows."""
    if duration is None or not settings.enabled or not duration > settings.seconds:
        return [], []
    clips = clip_grid(duration)
    spans = window_spans(len(clips), settings.clips_per_window, settings.clips_per_hop)
    return (clips, spans) if spans else ([], [])


def pool_windows(clip_vectors: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """Window vectors (len(spans), d): each the normalised mean of its clips' unit vectors."""
    clip_vectors = np.asarray(clip_vectors, dtype=np.float32)
    if clip_vectors.ndim != 2:
        raise ValueError(f"expected clip vectors shaped (clips, d), got {clip_vectors.shape}")
    if not spans:
        return np.zeros((0, clip_vectors.shape[1]), dtype=np.float32)
    for first, stop in spans:
        if not 0 <= first < stop <= clip_vectors.shape[0]:
            raise ValueError(f"window over clips [{first}, {stop}) is outside {clip_vectors.shape[0]} clips")
    # Prefix sums make every window one subtraction, however much windows overlap.
    sums = np.concatenate([np.zeros((1, clip_vectors.shape[1]), np.float64), np.cumsum(clip_vectors, axis=0)])
    first = np.array([s for s, _ in spans])
    stop = np.array([e for _, e in spans])
    return l2_normalize((sums[stop] - sums[first]).astype(np.float32))


def window_times(clips: list[tuple[float, float]], spans: list[tuple[int, int]]) -> list[tuple[float, float]]:
    """(start, end) in seconds of each window."""
    return [(clips[first][0], clips[stop - 1][1]) for first, stop in spans]


def chunks(num_clips: int, per_chunk: int) -> list[tuple[int, int]]:
    """Consecutive clip ranges of at most ``per_chunk`` clips: the pieces a long file is read in."""
    if per_chunk <= 0:
        raise ValueError("per_chunk must be positive")
    return [(i, min(i + per_chunk, num_clips)) for i in range(0, num_clips, per_chunk)]


def format_time(seconds: float) -> str:
    """``seconds`` as m:ss or h:mm:ss (tenths when not whole), for result tables."""
    tenths = round(seconds * 10)
    whole, frac = divmod(tenths, 10)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return f"{text}.{frac}" if frac else text
