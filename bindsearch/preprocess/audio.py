"""Decoded audio to the (clips, 1, 128, 204) tensor the ImageBind audio encoder takes.

The recipe (see the fixture README, "Preprocessing facts"):

1. take the first channel of a multi-channel signal (the reference keeps
   channel 0; the conformance fixture's stereo case, whose channels differ,
   matches channel 0 and not the mean or channel 1);
2. resample to 16 kHz with a Hann-windowed sinc (``resample.py``);
3. cut 3 clips of 2 s starting at 0, m/3 and 2m/3, m = max(duration - 2 s, 0);
   a clip that runs past the end is just shorter (``clip_bounds``);
4. per clip: subtract its mean, Kaldi log mel filterbank (``fbank.py``),
   transpose to (128, frames), zero-pad or cut to 204 frames, then
   normalise as (x + 4.268) / 9.138.

One quirk of the reference is reproduced on purpose (``cut_clips``): it
subtracts each clip's mean in place, in a buffer the clips share, so a later
clip that overlaps an earlier one sees that earlier clip's mean removed up to
where the earlier clip ended, and a small step there. The filterbank removes
each frame's DC offset, so only the two or three frames straddling the step
change, but they change a lot when the signal has a DC offset, and the
conformance fixture shows them (its stereo and 22.05 kHz cases).

Several signals are handled in one batch: their clips are zero-padded to a
common length and the filterbank runs once, on whatever device the samples
are on.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch

from .clips import clip_starts
from .fbank import NUM_MEL_BINS, log_mel_fbank
from .resample import resample

SAMPLE_RATE = 16_000
CLIP_SECONDS = 2
NUM_CLIPS = 3
TARGET_FRAMES = 204
# Dataset statistics of the log mel features the encoder was trained on.
FBANK_MEAN = -4.268
FBANK_STD = 9.138


def clip_bounds(
    num_samples: int,
    sample_rate: int = SAMPLE_RATE,
    clip_seconds: float = CLIP_SECONDS,
    num_clips: int = NUM_CLIPS,
) -> list[tuple[int, int]]:
    """Sample ranges [start, stop) of the clips of a signal of ``num_samples`` at ``sample_rate``.

    Times convert to samples by truncation; ``stop`` is clamped to the signal,
    so a clip past the end is shorter (possibly empty).
    """
    duration = num_samples / sample_rate  # a float, as in the reference
    bounds = []
    for start in clip_starts(duration, clip_seconds, num_clips):
        end = start + Fraction(clip_seconds)
        first, last = int(start * sample_rate), int(end * sample_rate)
        bounds.append((min(first, num_samples), min(last, num_samples)))
    return bounds


def to_mono(samples: torch.Tensor | np.ndarray, channel: int = 0) -> torch.Tensor:
    """(channels, n) or (n,) samples to one float32 channel (n,); the reference uses channel 0."""
    x = torch.as_tensor(samples)
    if x.dim() == 1:
        return x.to(torch.float32)
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"expected samples shaped (channels, n) or (n,), got {tuple(x.shape)}")
    if not -x.shape[0] <= channel < x.shape[0]:
        raise ValueError(f"channel {channel} does not exist in a signal of {x.shape[0]} channels")
    return x[channel].to(torch.float32)


def fbank_to_input(features: torch.Tensor, target_frames: int = TARGET_FRAMES) -> torch.Tensor:
    """Filterbank output (batch, frames, 128) to normalised model input (batch, 1, 128, target_frames).

    Missing frames are zeros before normalisation, like the rows ``log_mel_fbank``
    zeroes past each signal's own length.
    """
    if features.dim() != 3:
        raise ValueError(f"expected features (batch, frames, bins), got {tuple(features.shape)}")
    spec = features.transpose(1, 2)  # (batch, bins, frames)
    have = spec.shape[-1]
    if have < target_frames:
        spec = torch.nn.functional.pad(spec, (0, target_frames - have))
    else:
        spec = spec[..., :target_frames]
    return ((spec - FBANK_MEAN) / FBANK_STD).unsqueeze(1)


def cut_clips(
    mono: torch.Tensor,
    bounds: Sequence[tuple[int, int]],
    shared_buffer: bool = True,
    level: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """The clips ``mono[start:stop]`` of a 1-D signal, each with a mean subtracted.

    The mean subtracted from a clip is that of ``level`` over the clip's range
    (default: ``mono`` itself). The reference centres a clip with the mean over
    all its channels while using only the first channel afterwards, so for a
    multi-channel file pass the channel average as ``level``.

    With ``shared_buffer`` (the reference's behaviour) the clips are taken in
    order and each clip's mean is subtracted from the whole signal's buffer,
    so overlapping later clips see it; without it each clip is centred on its
    own. The inputs are never modified.
    """
    if mono.dim() != 1:
        raise ValueError(f"expected a 1-D signal, got {tuple(mono.shape)}")
    if level is not None and level.shape != mono.shape:
        raise ValueError(f"level signal shape {tuple(level.shape)} differs from {tuple(mono.shape)}")
    buffer = mono.to(torch.float32).clone()
    level = buffer if level is None else level.to(device=buffer.device, dtype=torch.float32).clone()
    clips = []
    for start, stop in bounds:
        if not 0 <= start <= stop <= buffer.shape[0]:
            raise ValueError(f"clip [{start}, {stop}) is outside a signal of {buffer.shape[0]} samples")
        if stop == start:
            clips.append(buffer[start:stop].clone())
            continue
        mean = level[start:stop].mean()
        if shared_buffer:
            buffer[start:stop] -= mean  # in place: later overlapping clips see it, as in the reference
            if level is not buffer:
                level[start:stop] -= mean
            clips.append(buffer[start:stop].clone())
        else:
            clips.append(buffer[start:stop] - mean)
    return clips


def clips_to_input(
    clips: Sequence[torch.Tensor], target_frames: int = TARGET_FRAMES, subtract_mean: bool = True
) -> torch.Tensor:
    """16 kHz mono clips (each (n,), lengths may differ) to model input (len(clips), 1, 128, target_frames).

    Each clip's mean is subtracted first unless ``subtract_mean`` is False
    (clips from ``cut_clips`` are already centred).
    """
    if not clips:
        raise ValueError("no clips given")
    device = clips[0].device
    longest = max(int(c.shape[-1]) for c in clips)
    batch = torch.zeros((len(clips), longest), dtype=torch.float32, device=device)
    lengths = torch.empty(len(clips), dtype=torch.int64)
    for row, clip in enumerate(clips):
        if clip.dim() != 1:
            raise ValueError(f"expected 1-D clips, got {tuple(clip.shape)}")
        n = int(clip.shape[0])
        if n:
            clip = clip.to(device=device, dtype=torch.float32)
            # Centre on the clip's own samples (a shorter clip's zero padding must not count).
            batch[row, :n] = clip - clip.mean() if subtract_mean else clip
        lengths[row] = n
    features, _ = log_mel_fbank(batch, lengths.to(device), SAMPLE_RATE, NUM_MEL_BINS)
    return fbank_to_input(features, target_frames)


def waveform_clips(
    samples: torch.Tensor | np.ndarray,
    sample_rate: int,
    channel: int = 0,
    num_clips: int = NUM_CLIPS,
    clip_seconds: float = CLIP_SECONDS,
) -> list[torch.Tensor]:
    """The centred 16 kHz mono clips of one decoded signal ((channels, n) or (n,) at ``sample_rate``).

    Only ``channel`` is kept, but clips are centred with the mean over all
    channels, as in the reference. Resampling is linear, so the channel average
    is resampled instead of every channel.
    """
    x = torch.as_tensor(samples)
    mono = to_mono(x, channel)
    rows = [mono]
    if x.dim() == 2 and x.shape[0] > 1:
        rows.append(x.to(torch.float32).mean(dim=0))
    resampled = resample(torch.stack(rows), int(sample_rate), SAMPLE_RATE)
    bounds = clip_bounds(resampled.shape[-1], SAMPLE_RATE, clip_seconds, num_clips)
    level = resampled[1] if len(rows) > 1 else None
    return cut_clips(resampled[0], bounds, level=level)


def audio_to_input(
    samples: torch.Tensor | np.ndarray,
    sample_rate: int,
    channel: int = 0,
    num_clips: int = NUM_CLIPS,
) -> torch.Tensor:
    """One decoded signal to model input (num_clips, 1, 128, 204)."""
    out = clips_to_input(waveform_clips(samples, sample_rate, channel, num_clips), subtract_mean=False)
    assert out.shape == (num_clips, 1, NUM_MEL_BINS, TARGET_FRAMES), out.shape
    return out


def audios_to_batch(
    signals: Sequence[tuple[torch.Tensor | np.ndarray, int]],
    channel: int = 0,
    num_clips: int = NUM_CLIPS,
) -> torch.Tensor:
    """Several decoded signals ((samples, rate) pairs) to model input (n, num_clips, 1, 128, 204).

    Resampling runs per signal (rates differ); the filterbank runs once over every clip.
    """
    if not signals:
        return torch.empty((0, num_clips, 1, NUM_MEL_BINS, TARGET_FRAMES), dtype=torch.float32)
    clips: list[torch.Tensor] = []
    for samples, rate in signals:
        clips.extend(waveform_clips(samples, rate, channel, num_clips))
    out = clips_to_input(clips, subtract_mean=False)
    return out.reshape(len(signals), num_clips, 1, NUM_MEL_BINS, TARGET_FRAMES)
