"""One small preview picture of one media file, whatever its modality."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, features

from ..errors import MediaError, first_line
from ..modality import Modality
from .audio import audio_picture
from .image import image_picture, video_picture
from .imu import imu_picture
from .sensors import depth_picture, thermal_picture
from .series import series_picture
from .text import text_picture

DEFAULT_SIZE = 320
MIN_SIZE, MAX_SIZE = 16, 2048
# WebP is about a third smaller than JPEG at the same look; a Pillow built without libwebp
# falls back to JPEG, and the media type says which a caller got.
WEBP = features.check("webp")
_FORMAT, _MEDIA_TYPE, _EXTENSION = ("WEBP", "image/webp", "webp") if WEBP else ("JPEG", "image/jpeg", "jpg")
_QUALITY = 80
# Line plots and text cards are a few flat colours: lossless WebP keeps their one-pixel lines crisp
# (lossy WebP halves colour resolution and smears them) and is four times smaller than lossy here.
_DRAWN = {"imu", "text", "timeseries"}


@dataclass(frozen=True)
class Thumbnail:
    """An encoded picture and its media type ("image/webp", or "image/jpeg" without WebP support)."""

    data: bytes
    media_type: str

    @property
    def extension(self) -> str:
        """The file name extension of its format, without the dot."""
        return "webp" if self.media_type == "image/webp" else "jpg"


def thumbnail_media_type() -> str:
    """The media type every thumbnail of this installation has."""
    return _MEDIA_TYPE


def thumbnail_extension() -> str:
    """The file name extension matching ``thumbnail_media_type``, without the dot."""
    return _EXTENSION


# By input kind: a built-in modality's name, or what a modality a space adds is read as (``Space.input_kind``).
_PICTURES: dict[str, Callable[[str, float | None, int], Image.Image]] = {
    "image": lambda path, at, size: image_picture(path, size),
    "video": video_picture,
    "audio": audio_picture,
    "depth": lambda path, at, size: depth_picture(path, size),
    "thermal": lambda path, at, size: thermal_picture(path, size),
    "image1": lambda path, at, size: thermal_picture(path, size),
    "imu": imu_picture,
    "timeseries": series_picture,
    "text": lambda path, at, size: text_picture(path, size),
}


def make_thumbnail(path: str, modality: Modality, at: float | None = None, size: int = DEFAULT_SIZE,
                   kind: str | None = None) -> Thumbnail:
    """A preview of ``path`` fitting in size x size pixels, encoded as WebP (JPEG where Pillow lacks WebP).

    Images, video frames, depth and thermal maps keep their aspect ratio and
    are never enlarged; IMU plots, spectrograms and text cards are drawn
    size x (size * 9 / 16). ``at`` (seconds) picks the video frame, the start
    of the sound shown, or of the IMU span shown; other modalities ignore it.
    Raises MediaError (path and one-line reason) for any file that cannot be
    read, ValueError for a size or time that makes no sense. ``kind``: how a
    modality that a space adds is read (its ``Space.input_kind``).
    """
    modality = Modality.parse(modality)
    kind = kind or modality.value
    if kind not in _PICTURES:
        raise ValueError(f"no thumbnail for {modality} files (input kind {kind!r})")
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be a whole number of pixels from {MIN_SIZE} to {MAX_SIZE}, got {size!r}")
    if at is not None and not (math.isfinite(at) and at >= 0):
        raise ValueError(f"at must be a time in seconds, 0 or more, got {at!r}")
    path = str(path)
    try:
        picture = _PICTURES[kind](path, at, size)
        return Thumbnail(encode(picture, lossless=kind in _DRAWN), _MEDIA_TYPE)
    except MediaError:
        raise
    except MemoryError:
        raise MediaError(path, "too large to make a thumbnail of in memory") from None
    except Exception as exc:
        # The loaders word every failure they foresee; whatever else bad content provokes is still a
        # bad file to the caller, never a crash of the page that asked for its picture.
        raise MediaError(path, f"cannot make a thumbnail ({type(exc).__name__}: {first_line(exc)})") from None


def encode(picture: Image.Image, lossless: bool = False) -> bytes:
    """An RGB picture in this installation's thumbnail format (``lossless`` where that is WebP)."""
    if picture.mode != "RGB":
        picture = picture.convert("RGB")
    out = io.BytesIO()
    if _FORMAT == "WEBP":
        if lossless:
            picture.save(out, "WEBP", lossless=True, quality=100, method=4)
        else:
            picture.save(out, "WEBP", quality=_QUALITY, method=4)
    else:
        picture.save(out, "JPEG", quality=_QUALITY + 5, optimize=True)
    return out.getvalue()
