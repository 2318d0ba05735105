"""Text documents as a card: their first lines on a light background."""

from __future__ import annotations

import functools
import unicodedata

from PIL import Image, ImageDraw, ImageFont

from ..errors import NothingToEmbed
from ..loaders.text import load_text
from .canvas import plot_size

READ_BYTES = 4096  # more than a card holds, however short its lines
BACKGROUND = (250, 248, 242)
INK = (45, 45, 45)
FAINT = (150, 150, 150)


@functools.lru_cache(maxsize=16)
def font(pixels: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's own font at ``pixels`` (its fixed bitmap font where Pillow has no FreeType)."""
    try:
        return ImageFont.load_default(size=pixels)
    except (TypeError, OSError):  # Pillow before 10.1 takes no size
        return ImageFont.load_default()


def text_picture(path: str, size: int) -> Image.Image:
    """The start of a text file, wrapped to the card's width; MediaError for a file that is not text."""
    try:
        text = load_text(path, READ_BYTES)
    except NothingToEmbed:
        text = ""  # an empty document is a blank card, not a failure
    width, height = plot_size(size)
    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    card_font = font(max(8, size // 24))
    margin = max(2, size // 32)
    line_height = _line_height(draw, card_font)
    room = max(1, (height - 2 * margin) // line_height)
    lines = wrap(text, lambda s: draw.textlength(s, font=card_font), width - 2 * margin, room + 1)
    if not lines:
        draw.text((margin, margin), "(empty)", fill=FAINT, font=card_font)
    elif len(lines) > room:
        lines = [*lines[: room - 1], lines[room - 1] + " …"]
    for i, line in enumerate(lines[:room]):
        draw.text((margin, margin + i * line_height), line, fill=INK, font=card_font)
    return img


def _line_height(draw: ImageDraw.ImageDraw, card_font) -> int:
    top, bottom = draw.textbbox((0, 0), "Ag", font=card_font)[1::2]
    return max(1, round((bottom - top) * 1.35))


def printable(line: str) -> str:
    """A line with tabs as spaces and control or format characters (a stray NUL, bidi marks) dropped."""
    line = line.expandtabs(4)
    return "".join(ch for ch in line if not unicodedata.category(ch).startswith("C"))


def wrap(text: str, measure, width: float, max_lines: int) -> list[str]:
    """Up to ``max_lines`` lines of ``text`` no wider than ``width`` by ``measure``, broken between words.

    A word wider than a line is broken between characters. Leading and
    trailing blank lines are dropped, inner ones kept (paragraphs).
    """
    out: list[str] = []
    for raw in text.strip("\n\r").splitlines():
        line = printable(raw).rstrip()
        if not line:
            out.append("")
        current = ""
        for word in line.split(" "):
            candidate = f"{current} {word}" if current else word
            if measure(candidate) <= width:
                current = candidate
                continue
            if current:
                out.append(current)
            current = word
            while measure(current) > width and len(current) > 1:
                cut = _fitting_prefix(current, measure, width)
                out.append(current[:cut])
                current = current[cut:]
        if current:
            out.append(current)
        if len(out) >= max_lines:
            break
    return out[:max_lines]


def _fitting_prefix(word: str, measure, width: float) -> int:
    """The length of the longest prefix of ``word`` that fits (at least one character)."""
    lo, hi = 1, len(word)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(word[:mid]) <= width:
            lo = mid
        else:
            hi = mid - 1
    return lo
