"""Band-limited resampling with a Hann-windowed sinc kernel, in torch.

Every output sample is a weighted sum of the input samples around its
position, the weights being an ideal low-pass filter (a sinc) tapered by a
Hann window so that the sum is finite:

    y[j] = sum_k x[k] * h(k - j * orig / new)

    h(d) = s * sinc(s * d) * cos^2(pi * s * d / (2 * width))  for |s * d| <= width, else 0

where ``d`` is the distance in input samples, ``s = rolloff * min(orig, new) / orig``
puts the cut-off just below the lower of the two Nyquist frequencies (so
downsampling does not alias), and ``width`` is the number of zero crossings
the kernel keeps on each side. Input outside the signal counts as zero, and
the output has ``ceil(n * new / orig)`` samples. With ``width=6`` and
``rolloff=0.99`` this is the windowed-sinc interpolation the reference
ImageBind pipeline resamples with.

The rates are reduced by their greatest common divisor: output sample
``b * q + p`` (``q`` = reduced new rate) then sits at input position
``b * o + p * o / q`` (``o`` = reduced old rate), so the weights depend only on
the phase ``p`` and can be tabulated once, ``q`` rows of ``2W + 1`` taps.

That makes the whole resampling one strided convolution (a polyphase filter):
``q`` output channels, one per phase, each a kernel of ``o + 2W`` taps that
holds phase ``p``'s weights at ``offsets[p]`` and zeros elsewhere, moved ``o``
input samples per step. Channel ``p`` of step ``b`` is output sample ``b*q + p``.
The convolution reads the signal in place; gathering each tap's samples first
would copy the signal ``2W + 1`` times over.
"""

from __future__ import annotations

import functools
import math

import torch

LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99
# Blocks of output filtered per convolution: bounds the temporary (rows, q, blocks) result of a long signal.
_BLOCKS_PER_STEP = 1 << 15
# Largest polyphase kernel (q x (o + 2W) taps, mostly zeros) built: 16 MB in float32.
_MAX_KERNEL_ELEMENTS = 1 << 22
# Otherwise: upper bound on the elements of a gathered (rows, blocks, q, 2W+1) chunk.
_GATHER_ELEMENTS = 1 << 23


def _reduced_rates(orig_rate: int, new_rate: int) -> tuple[int, int]:
    if int(orig_rate) != orig_rate or int(new_rate) != new_rate or orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be positive integers, got {orig_rate} and {new_rate}")
    g = math.gcd(int(orig_rate), int(new_rate))
    return int(orig_rate) // g, int(new_rate) // g


def sinc_kernel_table(
    orig_rate: int,
    new_rate: int,
    lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
    rolloff: float = ROLLOFF,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The tabulated filter: (weights (q, 2W+1) in ``dtype``, first-tap offsets (q,) int64, W).

    Row ``p`` holds the weights of input samples ``b*o + offsets[p] - W ... b*o + offsets[p] + W``
    for output sample ``b*q + p``; ``offsets[p] = floor(p * o / q)``.

    The kernel is evaluated in ``dtype``. In float32, the default, positions
    ``k/o - p/q`` are O(1) numbers scaled by up to ``rolloff * min(o, q)``
    (158.4 for 44.1 -> 16 kHz), so their rounding moves each tap by about 1e-5
    and leaves a noise floor near -100 dB under a full-scale signal. The
    reference evidently evaluates its kernel the same way: on the conformance
    fixture's 44.1 kHz stereo case a float32 kernel matches its input to 1e-3
    at most, a float64 one only to 5e-2, the difference sitting in near-silent
    mel bins, whose log amplifies anything. float64 is the cleaner filter.
    """
    if lowpass_filter_width <= 0 or not 0 < rolloff <= 1:
        raise ValueError("lowpass_filter_width must be positive and rolloff in (0, 1]")
    o, q = _reduced_rates(orig_rate, new_rate)
    base = rolloff * min(o, q)  # cut-off in the reduced rate units
    scale = base / o  # cut-off relative to the input rate: t = distance in input samples * scale
    half_width = math.ceil(lowpass_filter_width / scale)  # taps each side that can be non-zero
    phases = torch.arange(q, dtype=torch.int64)
    offsets = (phases * o) // q
    # Block-relative input index of every tap, and the output's block-relative position, in seconds * gcd.
    inputs = (offsets[:, None] + torch.arange(-half_width, half_width + 1)[None, :]).to(dtype) / o
    outputs = phases.to(dtype)[:, None] / q
    t = (inputs - outputs) * base  # distance in units of the cut-off period
    t = t.clamp(-lowpass_filter_width, lowpass_filter_width)  # outside the window the taper is 0
    window = torch.cos(t * (math.pi / (2 * lowpass_filter_width))) ** 2
    sinc = torch.special.sinc(t)  # sin(pi t) / (pi t), 1 at t = 0
    return sinc * window * scale, offsets, half_width


def resampled_length(num_samples: int, orig_rate: int, new_rate: int) -> int:
    """Samples after resampling ``num_samples``: ceil(n * new / orig)."""
    o, q = _reduced_rates(orig_rate, new_rate)
    return -(-num_samples * q // o)


def resample(
    waveform: torch.Tensor,
    orig_rate: int,
    new_rate: int,
    lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
    rolloff: float = ROLLOFF,
    kernel_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Resample the last axis of ``waveform`` (..., n) from ``orig_rate`` to ``new_rate`` Hz.

    Returns (..., ceil(n * new / orig)) in the input's dtype and device; the
    input is returned unchanged when the rates are equal. The kernel is
    evaluated in ``kernel_dtype`` (default: the waveform's dtype, as the
    reference does; see ``sinc_kernel_table``).
    """
    if not torch.is_floating_point(waveform):
        raise TypeError(f"expected a floating-point waveform, got {waveform.dtype}")
    if waveform.dim() == 0:
        raise ValueError("expected a waveform with a time axis, got a scalar")
    o, q = _reduced_rates(orig_rate, new_rate)
    if o == q:
        return waveform
    lead, n = waveform.shape[:-1], waveform.shape[-1]
    out_len = resampled_length(n, o, q)
    flat = waveform.reshape(-1, n)
    if n == 0 or flat.shape[0] == 0:
        return waveform.new_zeros((*lead, out_len))

    # Half-precision input is filtered in float32: a 16-bit kernel and accumulator would be audibly noisy.
    work = waveform.dtype if waveform.dtype in (torch.float32, torch.float64) else torch.float32
    weights, offsets, w = _table(o, q, lowpass_filter_width, rolloff, kernel_dtype or work)
    blocks = -(-out_len // q)
    # Zero-pad: W samples before the signal, and after it enough for the last block's window.
    padded = torch.nn.functional.pad(flat.to(work), (w, blocks * o + w - n)).unsqueeze(1)  # (rows, 1, L)
    out = padded.new_empty((flat.shape[0], blocks, q))
    if q * (o + 2 * w) <= _MAX_KERNEL_ELEMENTS:
        kernel = _polyphase_kernel(o, q, lowpass_filter_width, rolloff, kernel_dtype or work)
        kernel = kernel.to(device=waveform.device, dtype=work)
        for start in range(0, blocks, _BLOCKS_PER_STEP):
            stop = min(blocks, start + _BLOCKS_PER_STEP)
            part = padded[..., start * o:stop * o + 2 * w]
            out[:, start:stop] = torch.nn.functional.conv1d(part, kernel, stride=o).transpose(1, 2)
    else:
        # Rates that share almost no factor (a forged header's 44 101 Hz) would make that kernel huge: gather
        # each output's 2W + 1 input samples instead, a chunk of blocks at a time, and weigh them by phase.
        weights = weights.to(device=waveform.device, dtype=work)
        index = (offsets[:, None] + torch.arange(2 * w + 1)[None, :]).to(waveform.device)  # (q, 2W+1)
        windows = padded[:, 0].unfold(-1, o + 2 * w, o)  # (rows, blocks, o + 2W), a strided view
        step = max(1, _GATHER_ELEMENTS // (flat.shape[0] * q * (2 * w + 1)))
        for start in range(0, blocks, step):
            stop = min(blocks, start + step)
            out[:, start:stop] = torch.einsum("rbqt,qt->rbq", windows[:, start:stop][..., index], weights)
    return out.reshape(flat.shape[0], blocks * q)[:, :out_len].reshape(*lead, out_len).to(waveform.dtype)


@functools.lru_cache(maxsize=16)
def _table(o: int, q: int, width: int, rolloff: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, int]:
    return sinc_kernel_table(o, q, width, rolloff, dtype)


@functools.lru_cache(maxsize=16)
def _polyphase_kernel(o: int, q: int, width: int, rolloff: float, dtype: torch.dtype) -> torch.Tensor:
    """The (q, 1, o + 2W) convolution kernel of the reduced rates; see the module docstring."""
    weights, offsets, w = _table(o, q, width, rolloff, dtype)
    kernel = weights.new_zeros((q, o + 2 * w))
    kernel.scatter_(1, offsets[:, None] + torch.arange(2 * w + 1)[None, :], weights)
    return kernel.unsqueeze(1)
