"""Video files (MP4, MOV, MKV, WebM, AVI, ...) to RGB frames, their timing, and their soundtrack.

Frames are addressed by ordinal index, as the reference pipeline (decord)
does: frame i is the i-th frame in presentation order, and the duration is
``frames / average frame rate``. ``read_frames`` seeks to the keyframe before
each wanted frame unless the frame is close ahead of the decoder, so a long
video costs a few GOPs of decoding, not all of it. A frame's index is taken
from its timestamp (exact for constant frame rate, the nearest frame
otherwise).

Frames are turned upright from the stream's display matrix (phone videos
store portrait footage sideways plus a rotation), as images are from EXIF
orientation. The reference's decoder ignores it; an upright picture is what
the encoder was trained on.

Every failure becomes a MediaError with the path and a one-line reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import MediaError
from ..modality import Modality
from ..preprocess.image import elongation_reason
from ..regular_files import regular_path
from .audio import NO_STREAMS_REASON, decoder_reason, has_audio_stream, load_audio
from .common import check_content

# Decode forward instead of seeking when the next wanted frame is at most this far ahead
# (in seconds of video): a seek restarts decoding at a keyframe, often about as far back.
_SEEK_GAP_S = 2.5
# Refuse frames above this many pixels (8K UHD is 33 Mpx), as a malformed header can claim anything.
MAX_FRAME_PIXELS = 40_000_000


@dataclass(frozen=True)
class VideoInfo:
    """What a video's first video stream says about itself, from the headers.

    ``width`` and ``height`` are the stored frame size; frames from
    ``read_frames`` are turned upright, so a rotated video's come out transposed.
    """

    duration: float  # seconds: num_frames / fps, the reference's definition
    fps: float  # average frame rate
    num_frames: int  # from the container's index, else estimated as duration * fps
    width: int
    height: int
    has_audio: bool


def video_info(path: str) -> VideoInfo:
    """Frame count, rate, duration and stored size, from the headers (no frame is decoded)."""
    return _with_video(path, lambda container, stream, info: info)


def video_duration(path: str) -> float:
    """Duration in seconds as the reference counts it (frames / average fps)."""
    return video_info(path).duration


def read_frames(path: str, indices: Sequence[int], apply_rotation: bool = True) -> tuple[np.ndarray, VideoInfo]:
    """The frames at ordinal ``indices`` as uint8 RGB (len(indices), H, W, 3), and the video's info.

    Indices past the last frame give the last frame. Repeated indices are
    decoded once.
    """
    wanted = [int(i) for i in indices]
    if any(i < 0 for i in wanted):
        raise ValueError("frame indices must not be negative")

    def work(container, stream, info):
        return _pictures(container, stream, info, wanted, apply_rotation, path), info

    return _with_video(path, work)


def load_video_clips(
    path: str,
    num_clips: int = 5,
    clip_seconds: float = 2,
    frames_per_clip: int = 2,
    apply_rotation: bool = True,
) -> tuple[np.ndarray, VideoInfo]:
    """The frames the ImageBind video recipe samples, uint8 (num_clips, frames_per_clip, H, W, 3), and the info.

    Clip placement and frame choice are ``preprocess.video.clip_frame_indices``;
    ``preprocess.video.video_to_input`` turns the result into model input.
    """
    from ..preprocess.video import clip_frame_indices  # the recipe's sampling rule lives with the recipe

    def work(container, stream, info):
        chosen = clip_frame_indices(info.num_frames, info.fps, num_clips, clip_seconds, frames_per_clip)
        frames = _pictures(container, stream, info, [i for clip in chosen for i in clip], apply_rotation, path)
        return frames.reshape(num_clips, frames_per_clip, *frames.shape[1:]), info

    return _with_video(path, work)


def load_soundtrack(path: str) -> tuple[np.ndarray, int] | None:
    """The first audio stream of a video as float32 (channels, n) and its rate; None without one."""
    check_content(path, Modality.VIDEO)
    if not has_audio_stream(path):
        return None
    return load_audio(path)


# --- internals --------------------------------------------------------------------------------


def _import_av():
    import av

    return av


def _with_video(path: str, work):
    """Open ``path``, find its video stream and info, and return ``work(container, stream, info)``.

    Whatever goes wrong becomes a MediaError with a one-line reason.
    """
    check_content(path, Modality.VIDEO)
    av = _import_av()
    try:
        with regular_path(path) as opened, av.open(opened, metadata_errors="ignore") as container:
            stream = _first_video_stream(container, path)
            return work(container, stream, _info(container, stream, path))
    except MediaError:
        raise
    except MemoryError:
        raise MediaError(path, "video frames too large to decode in memory") from None
    except Exception as exc:
        raise MediaError(path, decoder_reason(exc, "video")) from None


def _pictures(container, stream, info: VideoInfo, wanted: list[int], apply_rotation: bool, path: str) -> np.ndarray:
    """uint8 RGB (len(wanted), H, W, 3) of the frames at ordinal indices ``wanted`` (any order, repeats)."""
    if not wanted:
        return np.zeros((0, info.height, info.width, 3), dtype=np.uint8)
    frames = _decode_indices(container, stream, info, sorted(set(wanted)), path)
    pictures = {i: _to_rgb(frame, apply_rotation) for i, frame in frames.items()}
    shapes = {p.shape for p in pictures.values()}
    if len(shapes) != 1:
        raise MediaError(path, f"frame size changes within the video ({sorted(shapes)})")
    return np.stack([pictures[i] for i in wanted])


_ATTACHED_PIC = 0x400  # AV_DISPOSITION_ATTACHED_PIC


def _first_video_stream(container, path: str):
    # Cover art in an audio file shows up as a one-frame "video" stream: not a video.
    streams = [s for s in container.streams.video if not s.disposition & _ATTACHED_PIC]
    if not container.streams.video and not container.streams.audio:
        raise MediaError(path, NO_STREAMS_REASON)
    if not streams:
        raise MediaError(path, "no video stream in the file")
    return streams[0]


def _frame_rate(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return 0.0


def _stream_seconds(container, stream) -> float | None:
    if stream.duration is not None and stream.duration > 0 and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _info(container, stream, path: str) -> VideoInfo:
    fps = _frame_rate(stream)
    if fps <= 0:
        raise MediaError(path, "video stream has no frame rate")
    width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    if width <= 0 or height <= 0:
        raise MediaError(path, "video stream has no frame size")
    if width * height > MAX_FRAME_PIXELS:
        raise MediaError(path, f"video frames are too large ({width} x {height})")
    elongated = elongation_reason(width, height, "video frame")
    if elongated is not None:
        raise MediaError(path, elongated)
    num_frames = int(stream.frames or 0)
    if num_frames <= 0:
        # Matroska/WebM and some AVIs do not count frames; estimate from the duration.
        seconds = _stream_seconds(container, stream)
        num_frames = int(round(seconds * fps)) if seconds else 0
    if num_frames <= 0:
        raise MediaError(path, "video has no frames (or does not say how long it is)")
    return VideoInfo(num_frames / fps, fps, num_frames, width, height, len(container.streams.audio) > 0)


def _frame_index(frame, origin: float, fps: float) -> int | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return int(round((float(frame.pts * frame.time_base) - origin) * fps))


def _decode_indices(container, stream, info: VideoInfo, wanted: list[int], path: str) -> dict:
    """Decoded PyAV frames for each wanted ordinal index (sorted, unique).

    Each wanted index gets the first frame whose index is at or past it (the
    last frame when the stream ends first). Indices come from timestamps; a
    stream without them is decoded from the start and its frames counted.
    """
    stream.thread_type = "AUTO"
    fps = info.fps
    origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    gap = max(1, int(_SEEK_GAP_S * fps))
    stamped = True
    found: dict = {}
    frames = None  # the decoding iterator
    current, current_index = None, -1
    for target in wanted:
        if frames is None or (stamped and target - current_index > gap):
            if target > gap and stamped:
                # Land on the keyframe at or before the target, then decode forward to it.
                seconds = target / fps + origin
                container.seek(int(seconds / stream.time_base), stream=stream, backward=True, any_frame=False)
            frames = container.decode(stream)
        while current_index < target:
            frame = next(frames, None)
            if frame is None:
                break
            index = _frame_index(frame, origin, fps) if stamped else current_index + 1
            if index is None:
                # No timestamps: start over from the top and count frames instead.
                stamped = False
                container.seek(0)
                frames = container.decode(stream)
                current, current_index = None, -1
                continue
            current, current_index = frame, index
        if current is None:
            raise MediaError(path, "no video frame could be decoded")
        if current_index < target and current_index < 0.9 * info.num_frames - fps:
            raise MediaError(
                path, f"truncated video: frames stop at {current_index / fps:.1f} s of {info.duration:.1f} s"
            )
        found[target] = current
    return found


def _to_rgb(frame, apply_rotation: bool) -> np.ndarray:
    picture = frame.to_ndarray(format="rgb24")
    if apply_rotation:
        turns = int(round((frame.rotation or 0) / 90.0)) % 4
        if turns:
            # rot90 turns counter-clockwise, the direction the display matrix angle is measured in.
            picture = np.ascontiguousarray(np.rot90(picture, k=turns))
    return picture
