"""Image files to RGB PIL images: any format Pillow reads, EXIF orientation applied."""

from __future__ import annotations

import re
import struct
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import MediaError
from ..modality import Modality, sniff_format
from ..preprocess.image import elongation_reason
from ..regular_files import regular_path, without_fd_paths
from .common import FILE_ERRNOS, check_content, os_reason, read_head

# Refuse images above this many pixels: a small file can claim a huge canvas
# ("decompression bomb") and decoding it would exhaust memory.
MAX_PIXELS = 178_956_970  # 2x Pillow's default warning threshold, Pillow's own hard limit


def load_image(path: str, max_pixels: int = MAX_PIXELS, shorter_side_at_least: int | None = None) -> Image.Image:
    """Decode an image file into an RGB image (first frame of an animation); see ``decode_image``."""
    check_content(path, Modality.IMAGE)
    return to_rgb(decode_image(path, max_pixels, refuse_elongated=True, shorter_side_at_least=shorter_side_at_least))


def decode_image(path: str, max_pixels: int = MAX_PIXELS, refuse_elongated: bool = False,
                 shorter_side_at_least: int | None = None) -> Image.Image:
    """Decode the first frame of an image file in its own mode (16-bit stays 16-bit), EXIF orientation applied.

    Refuses images over ``max_pixels`` before decoding them, and with
    ``refuse_elongated`` those whose aspect ratio would make the image
    transform's resize huge (``preprocess.image.elongation_reason``; the depth
    and thermal transforms compute only the crop, so any shape is fine for
    them). Every decoder failure becomes MediaError.

    With ``shorter_side_at_least``, a JPEG much larger than that is decoded at
    1/2, 1/4 or 1/8 of its size (the decoder scales its DCT blocks, which costs
    a fraction of a full decode), as small as keeps its shorter side at least
    that long; other formats decode whole. See ``reduced_decode_size``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on EXIF oddities and near-bomb sizes
            with regular_path(path) as opened:
                img = Image.open(opened)
            try:
                width, height = img.size
                if width * height > max_pixels:
                    raise MediaError(
                        path, f"image is too large ({width} x {height} pixels; the limit is {max_pixels:,} pixels)"
                    )
                if width < 1 or height < 1:
                    raise MediaError(path, f"image has no pixels ({width} x {height})")
                elongated = elongation_reason(width, height) if refuse_elongated else None
                if elongated is not None:
                    raise MediaError(path, elongated)
                img.seek(0)
                if shorter_side_at_least and img.format == "JPEG":
                    img.draft(img.mode, reduced_decode_size(width, height, shorter_side_at_least))
                img.load()
                out = img
                if img.getexif().get(0x0112, 1) != 1:
                    out = ImageOps.exif_transpose(img)
                if out is img and getattr(img, "fp", None) is not None:
                    # A multi-frame file stays open after load(); closing the image would drop its
                    # pixels, so keep a copy. A single frame is closed by load() itself: no copy needed.
                    out = img.copy()
                return out
            finally:
                if getattr(img, "fp", None) is not None:
                    img.close()
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError(path, _too_large_reason(exc, max_pixels)) from None
    except UnidentifiedImageError:
        found = _sniffed_image_format(path)
        if found is not None:
            # The signature is right but Pillow cannot parse the header that follows it.
            raise MediaError(path, f"corrupt or truncated {found} image (its header cannot be read)") from None
        raise MediaError(path, "not an image Pillow can read (unknown or corrupt format)") from None
    except OSError as exc:
        if exc.errno in FILE_ERRNOS:
            raise MediaError(path, os_reason(exc)) from None
        raise MediaError(path, f"corrupt or truncated image ({without_fd_paths(str(exc))})") from None
    except (ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError, struct.error) as exc:
        raise MediaError(path, f"corrupt image ({type(exc).__name__}: {without_fd_paths(str(exc))})") from None
    except Exception as exc:
        text = without_fd_paths(str(exc))
        raise MediaError(path, f"corrupt image or unsupported variant ({type(exc).__name__}: {text})") from None


def reduced_decode_size(width: int, height: int, shorter_side_at_least: int) -> tuple[int, int]:
    """The size to ask a JPEG decoder for: the image scaled so that its shorter side is ``shorter_side_at_least``
    (never up). The decoder picks the largest of its reductions that stays at least this big."""
    shorter = min(width, height)
    if shorter <= shorter_side_at_least:
        return width, height
    return -(-width * shorter_side_at_least // shorter), -(-height * shorter_side_at_least // shorter)


def _too_large_reason(exc: Exception, max_pixels: int) -> str:
    # Pillow refuses such an image in Image.open, before its size can be read; its message has the count.
    match = re.search(r"Image size \((\d+) pixels\)", str(exc))
    if match:
        return f"image is too large ({int(match.group(1)):,} pixels; the limit is {max_pixels:,} pixels)"
    return f"image is too large (over {max_pixels:,} pixels)"


def _sniffed_image_format(path: str) -> str | None:
    try:
        found = sniff_format(read_head(path))
    except MediaError:
        return None
    return found[0] if found is not None and found[1] is Modality.IMAGE else None


def to_rgb(img: Image.Image) -> Image.Image:
    """Any mode (greyscale, palette, alpha, 16-bit) to 8-bit RGB; alpha is dropped."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # Pillow's direct conversion clips 16-bit values; scale to 8 bits first.
        img = img.point(lambda v: v / 256).convert("L")
    return img.convert("RGB")
