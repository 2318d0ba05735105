"""Media files to ImageBind model input in one call: the loaders and the transforms put together.

Each function raises MediaError (from the loaders) for a file it cannot
read. Long audio is not decoded whole: the clips need only a few seconds of
it, so past ``full_decode_limit_s`` only the stretches around the clips are
decoded and resampled, which gives the same samples as resampling the whole
file (the resampling kernel reaches a few dozen samples, and the segments
keep a margin beyond that). Clips of a file that long never overlap, so the
reference's shared-buffer quirk (``audio.cut_clips``) has nothing to act on.
"""

from __future__ import annotations

import math

import torch

from ..loaders.audio import audio_info, load_audio
from ..loaders.image import load_image
from ..loaders.video import load_video_clips, read_frames, video_info
from .audio import NUM_CLIPS, SAMPLE_RATE, audio_to_input, clip_bounds, clips_to_input, to_mono
from .image import IMAGE_SIZE, image_to_tensor, reduced_decode_side
from .resample import resample, resampled_length, sinc_kernel_table
from .video import video_to_input

# Files up to this long are decoded whole (about 200 MB of float32 for 10 minutes of 44.1 kHz stereo)...
FULL_DECODE_LIMIT_S = 600.0
# ... and up to this many samples, all channels counted: 10 minutes of 8-channel 192 kHz is 17 times more.
FULL_DECODE_LIMIT_SAMPLES = int(FULL_DECODE_LIMIT_S * 44_100 * 2)


# A large JPEG is decoded reduced (DCT scaling), keeping twice the model's input size.
REDUCED_DECODE_SIDE = reduced_decode_side(IMAGE_SIZE)


def image_file_to_input(path: str) -> torch.Tensor:
    """An image file to (3, 224, 224)."""
    return image_to_tensor(load_image(path, shorter_side_at_least=REDUCED_DECODE_SIDE))


def video_file_to_input(path: str, num_clips: int = 5) -> torch.Tensor:
    """A video file to (num_clips * 3, 3, 2, 224, 224)."""
    frames, _ = load_video_clips(path, num_clips=num_clips)
    return video_to_input(frames)


def audio_file_to_input(
    path: str,
    num_clips: int = NUM_CLIPS,
    channel: int = 0,
    full_decode_limit_s: float = FULL_DECODE_LIMIT_S,
    full_decode_limit_samples: int = FULL_DECODE_LIMIT_SAMPLES,
) -> torch.Tensor:
    """An audio file (or a video's soundtrack) to (num_clips, 1, 128, 204)."""
    info = audio_info(path)
    if info.duration is None:
        # Nothing says where the clips fall: decode from the start, but never more than the limit.
        samples, rate = load_audio(path, max_samples=full_decode_limit_samples)
        return audio_to_input(samples, rate, channel, num_clips)
    if info.duration <= full_decode_limit_s and info.duration * info.rate * info.channels <= full_decode_limit_samples:
        samples, rate = load_audio(path)
        return audio_to_input(samples, rate, channel, num_clips)
    total = info.frames if info.frames is not None else int(round(info.duration * info.rate))
    clips = []
    for start, stop in clip_bounds(resampled_length(total, info.rate, SAMPLE_RATE), SAMPLE_RATE, num_clips=num_clips):
        clips.append(_decode_clip(path, info.rate, total, start, stop, channel))
    # Each clip is centred on its own mean over all channels (taken in _decode_clip), as in the reference.
    return clips_to_input(clips, subtract_mean=False)


def audio_file_clips_to_input(path: str, clips: list[tuple[float, float]], channel: int = 0) -> torch.Tensor:
    """Consecutive clips of an audio file, (start, end) seconds each, to model input (len(clips), 1, 128, 204).

    Used for the time windows of long files: only the stretch the clips span is
    decoded and resampled, and each clip is centred on its own mean over all
    channels, as a file-level clip is.
    """
    if not clips:
        raise ValueError("no clips given")
    info = audio_info(path)
    total = info.frames if info.frames is not None else int(round((info.duration or 0.0) * info.rate))
    n_out = resampled_length(total, info.rate, SAMPLE_RATE)
    bounds = [(min(int(s * SAMPLE_RATE), n_out), min(int(e * SAMPLE_RATE), n_out)) for s, e in clips]
    lo, hi = bounds[0][0], max(stop for _, stop in bounds)
    signal, level = _decode_range(path, info.rate, total, lo, hi, channel)
    pieces = []
    for start, stop in bounds:
        piece = signal[start - lo : stop - lo]
        pieces.append(piece - level[start - lo : stop - lo].mean() if piece.numel() else piece)
    return clips_to_input(pieces, subtract_mean=False)


def _decode_clip(path: str, rate: int, total: int, start: int, stop: int, channel: int) -> torch.Tensor:
    """Output samples [start, stop) of the file resampled to 16 kHz, centred, decoding only around them."""
    if stop <= start:
        return torch.zeros(0)
    signal, level = _decode_range(path, rate, total, start, stop, channel)
    return signal - level.mean()


def _decode_range(
    path: str, rate: int, total: int, start: int, stop: int, channel: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Output samples [start, stop) of channel ``channel`` resampled to 16 kHz, and of the channel average.

    Only the input around them is decoded; the outputs equal those of
    resampling the whole file.
    """
    if stop <= start:
        return torch.zeros(0), torch.zeros(0)
    g = math.gcd(rate, SAMPLE_RATE)
    o, q = rate // g, SAMPLE_RATE // g
    _, _, half_width = sinc_kernel_table(o, q)
    # Input reach of the wanted outputs, with the kernel's half width and a sample to spare each side.
    first_in = max(0, start * o // q - half_width - 1)
    last_in = min(total, -(-(stop - 1) * o // q) + half_width + 2)
    # Start the segment on a whole block of o input samples, so output phases line up with the full signal's.
    first_in -= first_in % o
    samples, got_rate = load_audio(path, start=first_in / rate, duration=(last_in - first_in) / rate)
    if got_rate != rate:
        raise RuntimeError(f"sample rate changed between header ({rate}) and decoding ({got_rate})")
    x = torch.as_tensor(samples)
    rows = [to_mono(x, channel)]
    if x.dim() == 2 and x.shape[0] > 1:
        rows.append(x.to(torch.float32).mean(dim=0))
    resampled = resample(torch.stack(rows), rate, SAMPLE_RATE)
    offset = (first_in // o) * q  # global output index of the segment's first output
    span = resampled[:, start - offset : stop - offset]
    # The all-channel average when there are several channels, else the channel itself.
    return span[0], span[-1]


def video_file_clips_to_input(path: str, clips: list[tuple[float, float]]) -> torch.Tensor:
    """Clips of a video file, (start, end) seconds each, to model input (len(clips), 3, 2, 224, 224).

    Each clip shows its first and last frame, as a file-level clip does, in
    one centre crop (a file-level clip has three crops: windows of a long
    video would cost three times as much for little gain).
    """
    if not clips:
        raise ValueError("no clips given")
    info = video_info(path)
    indices = []
    for start, end in clips:
        first = min(math.ceil(info.fps * start), info.num_frames - 1)
        last = max(first, min(math.ceil(info.fps * end), info.num_frames) - 1)
        indices += [first, last]
    frames, _ = read_frames(path, indices)
    frames = torch.as_tensor(frames).reshape(len(clips), 2, *frames.shape[1:])
    return video_to_input(frames, num_crops=1)
