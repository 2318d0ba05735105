"""Kaldi-compatible log mel filterbank features, batched, in torch.

This follows the definition of Kaldi's ``compute-fbank-feats`` with the
options the ImageBind audio recipe sets (128 bins, 25 ms frames every 10 ms,
Hanning window, no energy term, no dither) and Kaldi's defaults for the rest:

* frames: ``snip_edges`` is on, so only whole frames are taken:
  ``1 + (n - 400) // 160`` of them at 16 kHz, none when n < 400;
* per frame, in this order: remove the DC offset (subtract the frame's mean),
  pre-emphasis with coefficient 0.97 (``x[i] -= 0.97 * x[i-1]``, and the first
  sample ``x[0] -= 0.97 * x[0]``), the window, zero-padding to the next power
  of two (512), FFT, power spectrum ``|X|^2``;
* mel filters: triangles equally spaced on the mel scale
  ``mel(f) = 1127 ln(1 + f / 700)`` between ``low_freq`` = 20 Hz and
  ``high_freq`` = the Nyquist frequency, evaluated at each FFT bin's mel value;
  the Nyquist bin itself carries no weight (Kaldi uses the first n/2 bins);
* ``log(max(energy, eps))`` with eps the float32 machine epsilon.

"HTK compatibility" only changes where an energy term would go, and there is
none, so it has no effect here. Kaldi's "hanning" window is
``0.5 - 0.5 cos(2 pi i / (N - 1))`` (symmetric).
"""

from __future__ import annotations

import functools
import math

import torch

SAMPLE_RATE = 16_000
NUM_MEL_BINS = 128
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
PREEMPHASIS = 0.97
LOW_FREQ = 20.0
LOG_FLOOR = torch.finfo(torch.float32).eps  # Kaldi floors at numeric_limits<float>::epsilon()


def mel_scale(freq: torch.Tensor | float) -> torch.Tensor | float:
    """Hz to mel, the HTK formula Kaldi uses: 1127 ln(1 + f / 700)."""
    if isinstance(freq, torch.Tensor):
        return 1127.0 * torch.log1p(freq / 700.0)
    return 1127.0 * math.log1p(freq / 700.0)


def frame_sizes(sample_rate: int = SAMPLE_RATE) -> tuple[int, int, int]:
    """(window length, shift, FFT size) in samples for 25 ms frames every 10 ms."""
    window = int(sample_rate * FRAME_LENGTH_MS / 1000.0)
    shift = int(sample_rate * FRAME_SHIFT_MS / 1000.0)
    fft = 1 << (window - 1).bit_length()  # next power of two, Kaldi's round_to_power_of_two
    return window, shift, fft


def num_frames(num_samples: int | torch.Tensor, sample_rate: int = SAMPLE_RATE):
    """Whole frames in a signal of ``num_samples`` (Kaldi with snip_edges): 0 when shorter than a frame."""
    window, shift, _ = frame_sizes(sample_rate)
    if isinstance(num_samples, torch.Tensor):
        return torch.where(num_samples < window, 0, 1 + (num_samples - window).div(shift, rounding_mode="floor"))
    return 0 if num_samples < window else 1 + (num_samples - window) // shift


@functools.lru_cache(maxsize=8)
def _mel_filters_cpu(num_bins: int, fft_size: int, sample_rate: int, low_freq: float, high_freq: float) -> torch.Tensor:
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq = nyquist + high_freq  # Kaldi: a non-positive high_freq is an offset from Nyquist
    if not 0.0 <= low_freq < high_freq <= nyquist:
        raise ValueError(f"bad mel frequency range {low_freq} .. {high_freq} Hz for rate {sample_rate}")
    mel_low, mel_high = mel_scale(low_freq), mel_scale(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    edges = mel_low + delta * torch.arange(num_bins + 2, dtype=torch.float64)
    left, center, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    # Mel value of each FFT bin; the last (Nyquist) bin of the rfft gets no filter weight.
    bins = torch.arange(fft_size // 2 + 1, dtype=torch.float64)
    mel = mel_scale(bins * (sample_rate / fft_size))[None, :]
    rising = (mel - left) / (center - left)
    falling = (right - mel) / (right - center)
    weights = torch.where(mel <= center, rising, falling)
    weights = torch.where((mel > left) & (mel < right), weights, torch.zeros_like(weights))
    weights[:, -1] = 0.0
    return weights.to(torch.float32)  # (num_bins, fft_size // 2 + 1)


def mel_filters(
    num_bins: int = NUM_MEL_BINS,
    sample_rate: int = SAMPLE_RATE,
    low_freq: float = LOW_FREQ,
    high_freq: float = 0.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Kaldi's triangular mel filters as a (num_bins, fft_size // 2 + 1) float32 matrix."""
    _, _, fft = frame_sizes(sample_rate)
    return _mel_filters_cpu(num_bins, fft, sample_rate, float(low_freq), float(high_freq)).to(device)


@functools.lru_cache(maxsize=8)
def _hanning_cpu(length: int) -> torch.Tensor:
    # Kaldi's "hanning" is the symmetric Hann window, 0.5 - 0.5 cos(2 pi i / (N - 1)). torch's, evaluated
    # in float32, reproduces the fixture's 16 kHz case to 5e-6; a float64 window rounded to float32 differs
    # in the last bit here and there, which moves near-silent mel bins (the log amplifies everything
    # there) by up to 2e-4 after normalisation.
    return torch.hann_window(length, periodic=False, dtype=torch.float32)


def log_mel_fbank(
    waveforms: torch.Tensor,
    lengths: torch.Tensor | None = None,
    sample_rate: int = SAMPLE_RATE,
    num_mel_bins: int = NUM_MEL_BINS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log mel energies of a batch of signals.

    ``waveforms`` is (batch, samples), zero-padded on the right; ``lengths``
    (batch,) gives each row's real length (all of it when omitted). Returns
    ``(features, frames)``: features (batch, max_frames, num_mel_bins) float32,
    rows past a signal's own frame count set to 0, and frames (batch,) int64.
    """
    if waveforms.dim() != 2:
        raise ValueError(f"expected waveforms of shape (batch, samples), got {tuple(waveforms.shape)}")
    batch, total = waveforms.shape
    device = waveforms.device
    if lengths is None:
        lengths = torch.full((batch,), total, dtype=torch.int64, device=device)
    else:
        lengths = torch.as_tensor(lengths, dtype=torch.int64, device=device)
        if lengths.shape != (batch,) or bool((lengths > total).any()) or bool((lengths < 0).any()):
            raise ValueError("lengths must be (batch,) and within the padded length")
    window, shift, fft = frame_sizes(sample_rate)
    frames = num_frames(lengths, sample_rate)
    max_frames = int(num_frames(total, sample_rate))
    if max_frames == 0:
        return waveforms.new_zeros((batch, 0, num_mel_bins), dtype=torch.float32), frames

    x = waveforms.to(torch.float32)
    segments = x.unfold(-1, window, shift)  # (batch, max_frames, window)
    segments = segments - segments.mean(dim=-1, keepdim=True)  # DC offset removal
    # Pre-emphasis; the first sample is paired with itself, as Kaldi does.
    previous = torch.cat([segments[..., :1], segments[..., :-1]], dim=-1)
    segments = segments - PREEMPHASIS * previous
    segments = segments * _hanning_cpu(window).to(device)
    # float32, as the reference computes it. Where a bin's energy is near the log floor (far from a pure tone's
    # frequency), float32 rounding in the FFT is a visible part of it and depends on the FFT kernel the
    # processor runs (up to 3e-4 after normalisation); float64 would be exact there but as far from the reference.
    spectrum = torch.fft.rfft(segments, n=fft)  # zero-pads each frame to the FFT size
    power = spectrum.real.square() + spectrum.imag.square()  # (batch, max_frames, fft // 2 + 1); |X|^2 without a root
    energies = power @ mel_filters(num_mel_bins, sample_rate, device=device).T
    features = energies.clamp_min(LOG_FLOOR).log()
    valid = torch.arange(max_frames, device=device)[None, :] < frames[:, None]
    return features.masked_fill(~valid[..., None], 0.0), frames
