"""Plain text documents (.txt, .md) to strings, in any encoding ``text_encoding`` reads."""

from __future__ import annotations

from ..errors import MediaError, NothingToEmbed
from ..modality import Modality, sniff_format
from ..regular_files import open_regular
from ..text_encoding import decode_text
from .common import os_reason


def load_text(path: str, max_bytes: int) -> str:
    """The start of a text file (its first ``max_bytes``), decoded; a character cut at the end is dropped.

    A file with no text in it, empty or only whitespace, is NothingToEmbed
    (skipped, not failed): one rule whatever its size.
    """
    try:
        with open_regular(path) as f:
            data = f.read(max_bytes)
            complete = len(data) < max_bytes or not f.read(1)
    except OSError as exc:
        raise MediaError(path, os_reason(exc)) from None
    found = sniff_format(data)
    if found is not None:
        raise MediaError(path, f"content is {found[0]} ({found[1].value}), not {Modality.TEXT.value} as the name says")
    decoded = decode_text(data, complete=complete)
    if decoded is None:
        raise MediaError(path, "not a text file (binary content)")
    text = decoded[0].lstrip("\ufeff")
    if not text.strip():
        raise NothingToEmbed(path, "holds no text (empty, or only whitespace)")
    return text
