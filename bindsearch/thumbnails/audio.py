"""Sound as a spectrogram: time left to right, pitch upwards on a mel scale, loudness as colour."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from ..loaders.audio import load_audio
from .canvas import plot_size
from .colour import IRON_LUT, colour_map

SPAN_S = 10.0  # seconds of sound in one picture: what the audio encoder hears in one clip
# What one picture may decode (all channels counted): 10 s of 8 channels at 192 kHz, far beyond
# speech or music, so that a forged header cannot make a thumbnail request decode gigabytes.
MAX_SAMPLES = int(SPAN_S * 192_000 * 8)
DYNAMIC_RANGE_DB = 80.0  # quieter than the loudest point by more than this is drawn black
_FLOOR = 1e-10  # magnitude of digital silence, -200 dB, so that log10 never sees 0
# The top of the colour scale is the loudest point, but never below this: digital silence or
# near-silence is drawn black instead of being stretched to fill the scale.
_QUIETEST_TOP_DB = -100.0


def log_spectrogram(samples: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Magnitude in dB (n_fft // 2 + 1 frequency bins, frames) of a 1-D signal, Hann-windowed.

    A signal shorter than one window is zero-padded to one frame.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"samples must be 1-D, got shape {x.shape}")
    if n_fft < 2 or hop < 1:
        raise ValueError(f"n_fft must be at least 2 and hop at least 1, got {n_fft} and {hop}")
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1))
    return 20.0 * np.log10(np.maximum(spectrum, _FLOOR)).T


def fft_size(rate: int) -> int:
    """A power of two near 32 ms of samples: fine enough in pitch to show notes, in time to show syllables."""
    return max(64, 2 ** round(math.log2(rate * 0.032)))


def mel_rows(db: np.ndarray, rate: int, rows: int) -> np.ndarray:
    """(bins, frames) to (rows, frames), row 0 the lowest pitch, rows evenly spaced in mels.

    Linear frequency would spend most of the picture on the top octave, where
    little of speech or music happens. Each row keeps the loudest bin it spans
    (a row narrower than a bin takes the bin below it).
    """
    bins = db.shape[0]
    top = 2595.0 * math.log10(1.0 + (rate / 2) / 700.0)
    hz = 700.0 * (10.0 ** (np.linspace(0.0, top, rows + 1) / 2595.0) - 1.0)
    starts = np.clip(np.floor(hz[:-1] / (rate / 2) * (bins - 1)).astype(np.intp), 0, bins - 1)
    return np.maximum.reduceat(db, starts, axis=0)


def audio_picture(path: str, at: float | None, size: int) -> Image.Image:
    """The spectrogram of ``SPAN_S`` seconds from ``at`` (from the start when None or past the end)."""
    start = at or 0.0
    samples, rate = load_audio(path, start, SPAN_S, max_samples=MAX_SAMPLES)
    if samples.shape[1] == 0 and start > 0:
        samples, rate = load_audio(path, 0.0, SPAN_S, max_samples=MAX_SAMPLES)
    width, height = plot_size(size)
    n_fft = fft_size(rate)
    # About two frames per pixel column: more would be averaged away by the resize.
    hop = max(n_fft // 4, samples.shape[1] // (2 * width))
    db = log_spectrogram(samples.mean(axis=0), n_fft, hop)
    rows = mel_rows(db, rate, height)[::-1]  # low pitch at the bottom
    top = max(float(rows.max()), _QUIETEST_TOP_DB)
    rgb = colour_map(rows, IRON_LUT, limits=(top - DYNAMIC_RANGE_DB, top))
    return Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR)
