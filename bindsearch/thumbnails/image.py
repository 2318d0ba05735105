"""Photographs and video frames: decoded, turned upright and shrunk."""

from __future__ import annotations

import math
import warnings

from PIL import Image, ImageOps

from ..loaders.common import check_content
from ..loaders.image import MAX_PIXELS, decode_image, to_rgb
from ..loaders.video import read_frames, video_info
from ..modality import Modality
from ..regular_files import regular_path
from .canvas import shrink

# A video shorter than this shows its first frame; a longer one the frame 10 % in, past the
# black or title frames that many clips open with.
SHORT_VIDEO_S = 2.0
DEFAULT_VIDEO_SHARE = 0.1


def image_picture(path: str, size: int) -> Image.Image:
    """An image file as an upright RGB picture within size x size; MediaError for a bad file."""
    check_content(path, Modality.IMAGE)
    img = decode_reduced_jpeg(path, size)
    if img is None:
        # The loader's full decode, with its pixel cap and its one-line reasons for every failure.
        img = decode_image(path)
    return shrink(to_rgb(img), size)


def decode_reduced_jpeg(path: str, size: int) -> Image.Image | None:
    """A JPEG decoded at 1/2, 1/4 or 1/8 scale (still at least ``size`` a side), EXIF orientation applied.

    JPEG can decode straight to a smaller scale, skipping most of the work: a
    12 Mpx photo at 1/8 is 25 times faster than a full decode. None for
    anything else or any trouble, so that ``decode_image`` decides and words
    the error.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on EXIF oddities and near-bomb sizes
            with regular_path(path) as opened:
                img = Image.open(opened)
            with img:
                width, height = img.size
                if img.format != "JPEG" or width < 1 or height < 1 or width * height > MAX_PIXELS:
                    return None
                img.draft("RGB", (size, size))
                img.load()
                return ImageOps.exif_transpose(img)
    except Exception:
        return None


def default_video_time(duration: float) -> float:
    """Where a video's thumbnail is taken when no time is asked for."""
    return 0.0 if duration < SHORT_VIDEO_S else DEFAULT_VIDEO_SHARE * duration


def video_picture(path: str, at: float | None, size: int) -> Image.Image:
    """The first frame at or after ``at`` seconds (the last frame past the end), upright, within size x size.

    ``read_frames`` seeks to the keyframe before the frame and decodes forward
    to it, so a frame deep in a long video costs one group of pictures.
    """
    info = video_info(path)
    seconds = default_video_time(info.duration) if at is None else at
    # The frame whose time is at or after ``seconds``; the small slack keeps 0.3 s at 10 fps on frame 3.
    index = min(max(0, math.ceil(seconds * info.fps - 1e-6)), info.num_frames - 1)
    frames, _ = read_frames(path, [index])
    return shrink(Image.fromarray(frames[0]), size)
