"""Small preview pictures of indexed media, for pages that show search results.

``make_thumbnail`` draws one (a photo or video frame shrunk, a depth or
thermal map in false colour, a spectrogram, an IMU plot, a text card) and
``ThumbnailCache`` keeps them on disk, keyed by the source file's state.
"""

from __future__ import annotations

from .cache import ThumbnailCache
from .colour import DEPTH_LUT, IRON_LUT, colour_map
from .make import Thumbnail, make_thumbnail, thumbnail_media_type

__all__ = [
    "DEPTH_LUT",
    "IRON_LUT",
    "Thumbnail",
    "ThumbnailCache",
    "colour_map",
    "make_thumbnail",
    "thumbnail_media_type",
]
