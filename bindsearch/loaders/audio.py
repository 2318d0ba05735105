"""Audio files (and the soundtrack of video files) to float32 samples.

``load_audio`` returns ``(samples, rate)``: samples shaped (channels, n),
float32, integer formats scaled to [-1, 1) by their full-scale value (a 16-bit
sample s becomes s / 32768), at the file's own rate and channel count.

Lossless formats libsndfile reads (WAV, FLAC, Ogg Vorbis/Opus, AIFF) go
through soundfile, which is exact and fast; anything else (MP3, M4A/AAC,
Opus in WebM, MP4/MKV soundtracks, WAVs with codecs libsndfile lacks) goes
through PyAV (FFmpeg). Every failure, whatever the decoder raised, becomes a
MediaError with the path and a one-line reason, so an indexing run can record
the file and go on.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

from ..errors import MediaError
from ..modality import Modality, sniff_format
from ..regular_files import open_regular, regular_path, without_fd_paths
from .common import check_content, os_reason

# Seeking for a segment lands this much before it, so that lossy decoders have warmed up.
_SEEK_PREROLL_S = 0.5
# Containers whose audio libsndfile decodes; others go straight to FFmpeg.
_SOUNDFILE_FORMATS = {"WAV", "FLAC", "Ogg"}
# The highest rate audio hardware records at. A header can claim any rate, and resampling a rate that
# shares no factor with 16 kHz tabulates a filter of about 12 x rate taps: 10 MHz would take gigabytes.
MAX_SAMPLE_RATE = 768_000


def check_sample_rate(path: str, rate: int) -> int:
    """``rate`` itself when it is one audio can have; MediaError otherwise (a corrupt or forged header)."""
    if rate <= 0:
        raise MediaError(path, "audio has no sample rate")
    if rate > MAX_SAMPLE_RATE:
        raise MediaError(path, f"sample rate {rate:,} Hz is above the {MAX_SAMPLE_RATE:,} Hz any recorder uses")
    return rate


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says about its (first) audio stream."""

    rate: int
    channels: int
    duration: float | None  # seconds; None when the container does not say
    frames: int | None  # samples per channel, when known exactly (lossless formats)


def load_audio(
    path: str, start: float = 0.0, duration: float | None = None, max_samples: int | None = None
) -> tuple[np.ndarray, int]:
    """Decode an audio file, or the first audio stream of a video file, to ``(samples, rate)``.

    ``samples`` is float32 (channels, n). ``start`` and ``duration`` (seconds)
    select a segment; a segment past the end is just shorter. ``max_samples``
    bounds channels x n: a longer stream is refused, decoding stops there.
    Raises MediaError for a file with no decodable audio.
    """
    if start < 0 or (duration is not None and duration < 0):
        raise ValueError("start and duration must not be negative")
    head = check_content(path, Modality.AUDIO)
    found = sniff_format(head)
    samples: np.ndarray | None = None
    rate = 0
    if found is not None and found[0] in _SOUNDFILE_FORMATS:
        try:
            samples, rate = _read_soundfile(path, start, duration, max_samples)
        except MediaError:
            raise
        except Exception:
            samples = None
    if samples is None:
        samples, rate = _read_pyav(path, start, duration, max_samples)
    if samples.shape[1] == 0 and start == 0:
        raise MediaError(path, "no audio samples could be decoded")
    if not np.isfinite(samples).all():
        raise MediaError(path, "audio holds invalid (NaN or infinite) samples")
    return within_full_scale(samples), rate


def within_full_scale(samples: np.ndarray) -> np.ndarray:
    """Float samples brought within [-1, 1]: divided by their peak when it is above 1, else unchanged.

    Float audio has full scale 1, and integer formats are scaled into it, so
    only a float file written on another scale (integer values stored as
    floats, or garbage) goes beyond. Its log-mel features would sit
    2 ln(peak) above anything the encoder saw (peak 1e3 moves the model
    input by 1.5, about its whole range) and overflow float32 past 1e17;
    dividing by the peak keeps the waveform, where clipping would square it
    off. A segment decoded alone is scaled by its own peak.
    """
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak <= 1.0:
        return samples
    return (samples / np.float32(peak)).astype(np.float32)


def audio_info(path: str) -> AudioInfo:
    """Rate, channels and duration from the file's header, without decoding it."""
    head = check_content(path, Modality.AUDIO)
    found = sniff_format(head)
    if found is not None and found[0] in _SOUNDFILE_FORMATS:
        try:
            import soundfile

            with regular_path(path) as opened:
                info = soundfile.info(opened)
            if info.samplerate > 0 and info.channels > 0:
                rate = check_sample_rate(path, info.samplerate)
                return AudioInfo(rate, info.channels, info.frames / rate, info.frames)
        except MediaError:
            raise
        except Exception:
            pass
    av = _import_av()
    try:
        with regular_path(path) as opened, av.open(opened, metadata_errors="ignore") as container:
            stream = _first_audio_stream(container, path)
            rate = int(stream.codec_context.sample_rate or stream.rate or 0)
            channels = int(stream.codec_context.channels or 0)
            if rate <= 0 or channels <= 0:
                raise MediaError(path, "audio stream has no sample rate or channel count")
            check_sample_rate(path, rate)
            return AudioInfo(rate, channels, _container_duration(container, stream), None)
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(path, decoder_reason(exc)) from None


def audio_duration(path: str) -> float | None:
    """Duration in seconds from the header (cheap), or None when the file does not say."""
    return audio_info(path).duration


def has_audio_stream(path: str) -> bool:
    """True when FFmpeg finds an audio stream in the file (e.g. a video with a soundtrack).

    Raises MediaError for a file that is missing, empty, not media, or so
    damaged that FFmpeg finds neither audio nor video in it (an MP4 cut
    inside its header), rather than answering False for it.
    """
    check_content(path, Modality.AUDIO)
    av = _import_av()
    try:
        with regular_path(path) as opened, av.open(opened, metadata_errors="ignore") as container:
            if not container.streams.audio and not container.streams.video:
                raise MediaError(path, NO_STREAMS_REASON)
            return len(container.streams.audio) > 0
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(path, decoder_reason(exc)) from None


# --- libsndfile -------------------------------------------------------------------------------


def _read_soundfile(path: str, start: float, duration: float | None, max_samples: int | None) -> tuple[np.ndarray, int]:
    import soundfile

    with regular_path(path) as opened, soundfile.SoundFile(opened) as f:
        rate, total = int(f.samplerate), int(f.frames)
        if rate <= 0 or f.channels <= 0:
            raise MediaError(path, "audio has no sample rate or channel count")
        check_sample_rate(path, rate)
        if f.format == "WAV":
            _check_wav_complete(path, total, f.channels, f.subtype)
        first = min(total, int(round(start * rate)))
        count = total - first if duration is None else min(total - first, int(round(duration * rate)))
        if max_samples is not None and count * f.channels > max_samples:
            raise MediaError(path, too_long_reason(max_samples))
        if first:
            f.seek(first)
        data = f.read(count, dtype="float32", always_2d=True)  # (n, channels)
    if data.shape[0] < count:
        # The header promised more (FLAC's STREAMINFO, say) than the decoder could read: a cut file.
        raise MediaError(
            path, f"truncated audio: the header declares {total} samples, only {first + data.shape[0]} could be decoded"
        )
    return np.ascontiguousarray(data.T), rate


_WAV_SAMPLE_BYTES = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}


def _check_wav_complete(path: str, frames: int, channels: int, subtype: str) -> None:
    """Refuse a RIFF WAV whose data chunk is cut short: libsndfile silently reads what is there.

    A header that declares 0 or 0xFFFFFFFF bytes (written by a streaming
    recorder that never went back to fill it in) says nothing, and passes.
    """
    width = _WAV_SAMPLE_BYTES.get(subtype)
    declared = _wav_declared_data_bytes(path)
    if width is None or declared is None or declared in (0, 0xFFFFFFFF):
        return
    expected = declared // (width * channels)
    if frames < expected:
        share = (expected - frames) / max(expected, 1)
        missing = f"{share:.0%} missing" if share >= 0.01 else f"{expected - frames} missing"
        raise MediaError(
            path, f"truncated WAV: the header declares {expected} samples, the file holds {frames} ({missing})"
        )


def _wav_declared_data_bytes(path: str) -> int | None:
    """Size the 'data' chunk header of a RIFF WAV declares, or None if it cannot be found."""
    try:
        with open_regular(path) as f:
            riff = f.read(12)
            if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
                return None
            while True:
                header = f.read(8)
                if len(header) < 8:
                    return None
                kind, size = header[:4], struct.unpack("<I", header[4:])[0]
                if kind == b"data":
                    return size
                f.seek(size + (size & 1), os.SEEK_CUR)  # chunks are padded to even sizes
    except OSError as exc:
        raise MediaError(path, os_reason(exc)) from None


# --- FFmpeg (PyAV) ----------------------------------------------------------------------------


def _import_av():
    import av

    return av


# What a container with neither audio nor video streams means: FFmpeg opened it but could not read
# the stream headers (an MP4 cut inside its 'moov' box, say).
NO_STREAMS_REASON = "corrupt or truncated file (no audio or video stream could be read from it)"


def _first_audio_stream(container, path: str):
    streams = container.streams.audio
    if not streams and not container.streams.video:
        raise MediaError(path, NO_STREAMS_REASON)
    if not streams:
        raise MediaError(path, "no audio stream in the file")
    return streams[0]


def _container_duration(container, stream) -> float | None:
    """Duration in seconds from the stream, else the container; None when neither says."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _read_pyav(path: str, start: float, duration: float | None, max_samples: int | None) -> tuple[np.ndarray, int]:
    av = _import_av()
    try:
        with regular_path(path) as opened, av.open(opened, metadata_errors="ignore") as container:
            stream = _first_audio_stream(container, path)
            samples, rate = decode_audio_stream(container, stream, path, start, duration, max_samples)
            if start == 0 and duration is None:
                _check_complete(path, stream, samples.shape[1] / rate)
            return samples, rate
    except MediaError:
        raise
    except MemoryError:
        raise MediaError(path, "audio too long to decode in memory") from None
    except Exception as exc:
        raise MediaError(path, decoder_reason(exc)) from None


def decode_audio_stream(
    container, stream, path: str, start: float = 0.0, duration: float | None = None, max_samples: int | None = None
) -> tuple[np.ndarray, int]:
    """Decode one audio stream of an open PyAV container to float32 (channels, n) and its rate.

    The whole stream is the concatenation of its decoded frames (priming
    samples are already dropped by FFmpeg). For a segment the container is
    seeked and frames are placed by their timestamps, relative to the
    stream's start, which is exact for PCM in WAV/FLAC-like containers and
    within about a millisecond otherwise (Matroska stores milliseconds).
    """
    stream.thread_type = "AUTO"
    rate = check_sample_rate(path, int(stream.codec_context.sample_rate or stream.rate or 0))
    first = int(round(start * rate))
    stop = None if duration is None else first + int(round(duration * rate))
    origin = stream.start_time if stream.start_time is not None else 0
    if first > 0:
        # Land a little early: lossy decoders need a frame or two of context (MDCT overlap) before
        # their output is right; the samples before ``first`` are then dropped.
        target = max(start - _SEEK_PREROLL_S, 0.0)
        try:
            container.seek(int(target / stream.time_base) + origin, stream=stream, backward=True, any_frame=False)
        except Exception:
            container.seek(0)
    chunks: list[np.ndarray] = []
    channels = 0
    kept = 0  # samples in chunks, all channels counted
    position = 0 if first == 0 else None  # sample index of the next decoded sample, once known
    for frame in container.decode(stream):
        if frame.sample_rate and frame.sample_rate != rate:
            raise MediaError(path, f"sample rate changes mid-stream ({rate} -> {frame.sample_rate} Hz)")
        data = frame_to_float(frame)
        if not channels:
            channels = data.shape[0]
        elif data.shape[0] != channels:
            data = _match_channels(data, channels)
        if position is None:
            # Place the first frame after the seek by its timestamp, then count samples: timestamps
            # can be coarser than a sample (Matroska's are milliseconds), counts are exact.
            stamped = frame.pts is not None and frame.time_base is not None
            position = int(round(float((frame.pts - origin) * frame.time_base) * rate)) if stamped else 0
        n = data.shape[1]
        lo, hi = max(first - position, 0), n if stop is None else min(n, stop - position)
        if hi > lo:
            chunks.append(data[:, lo:hi])
            kept += (hi - lo) * channels
            if max_samples is not None and kept > max_samples:
                raise MediaError(path, too_long_reason(max_samples))
        position += n
        if stop is not None and position >= stop:
            break
    if not channels:
        raise MediaError(path, "no audio samples could be decoded")
    samples = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), dtype=np.float32)
    return np.ascontiguousarray(samples, dtype=np.float32), rate


def too_long_reason(max_samples: int) -> str:
    return f"audio too long to decode whole (over {max_samples:,} samples, all channels counted)"


def _check_complete(path: str, stream, decoded: float) -> None:
    """Refuse a stream that decodes to much less than its own header declares (a cut file).

    Only the audio stream's own duration counts (an MP3's Xing header, an
    MP4's track header), never the container's: a video's soundtrack may
    rightly end before its picture does.
    """
    if stream.duration is None or stream.time_base is None or stream.duration <= 0:
        return
    declared = float(stream.duration * stream.time_base)
    if decoded < 0.9 * declared and declared - decoded > 0.5:
        raise MediaError(
            path, f"truncated audio: the header declares {declared:.2f} s, only {decoded:.2f} s could be decoded"
        )


# Full-scale values of FFmpeg's integer sample formats; unsigned 8-bit is offset by 128.
_INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0, np.dtype(np.int64): 2.0**63}


def frame_to_float(frame) -> np.ndarray:
    """One decoded PyAV audio frame to float32 (channels, samples), integers scaled to [-1, 1)."""
    array = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        # Packed formats come back as one row of interleaved samples.
        array = array.reshape(-1, channels).T
    if array.dtype == np.uint8:
        return ((array.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    scale = _INT_SCALE.get(array.dtype)
    if scale is not None:
        return (array.astype(np.float64) / scale).astype(np.float32)
    with np.errstate(over="ignore"):  # doubles beyond float32 become infinite, which load_audio refuses
        return array.astype(np.float32, copy=False)


def _match_channels(data: np.ndarray, channels: int) -> np.ndarray:
    """A frame whose channel count changed mid-stream, brought back to ``channels`` rows."""
    if data.shape[0] > channels:
        return data[:channels]
    return np.concatenate([data, np.repeat(data.mean(axis=0, keepdims=True), channels - data.shape[0], 0)])


def decoder_reason(exc: BaseException, what: str = "audio") -> str:
    """A one-line reason for a decoder failure, without the path FFmpeg's messages repeat."""
    av = _import_av()
    if isinstance(exc, av.error.FFmpegError):
        text = exc.strerror or type(exc).__name__
        if isinstance(exc, (av.error.InvalidDataError, av.error.EOFError)):
            return f"corrupt or truncated {what} ({text})"
        return f"cannot decode {what} ({text})"
    if isinstance(exc, OSError) and exc.errno is not None:
        return os_reason(exc)
    text = without_fd_paths(" ".join(str(exc).split())) or type(exc).__name__
    return f"cannot decode {what} ({type(exc).__name__}: {text})"
