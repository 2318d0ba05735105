"""Telling text from binary data, and decoding text in the encodings files commonly use.

A byte-order mark names the encoding (UTF-8, UTF-16 or UTF-32, either byte
order). Without one, UTF-8 is tried, then Windows-1252 (a superset of the
printable Latin-1 range, as Windows editors and spreadsheets save), then
Latin-1 for the five bytes Windows-1252 leaves undefined. Any bytes decode as
Latin-1, so what makes data text is what it decodes to: no NUL and no control
character other than whitespace.
"""

from __future__ import annotations

import codecs

# The UTF-32 marks begin with the UTF-16 ones, so they are tried first.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_FALLBACKS = ("utf-8", "cp1252", "latin-1")

# C0 control characters other than whitespace, and DEL: never found in text files.
_CONTROL = frozenset(chr(c) for c in [*range(0, 9), 11, *range(14, 27), *range(28, 32), 127])


def decode_text(data: bytes, complete: bool = True) -> tuple[str, str] | None:
    """(text, encoding name) for bytes that are text, None for binary data.

    ``complete`` False: ``data`` is the start of a longer file, so a character
    cut at its end is dropped rather than counted against it.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            text = _decode(data[len(bom) :], codec, complete)
            return (text, codec) if text is not None and _is_text(text) else None
    if b"\x00" in data:
        return None  # UTF-16 or UTF-32 without a mark is not told from binary data
    for codec in _FALLBACKS:
        text = _decode(data, codec, complete)
        if text is not None:
            return (text, codec) if _is_text(text) else None
    return None


def _decode(data: bytes, codec: str, complete: bool) -> str | None:
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    try:
        return decoder.decode(data, final=complete)
    except UnicodeDecodeError:
        return None


def _is_text(text: str) -> bool:
    return not any(ch in _CONTROL for ch in text)
