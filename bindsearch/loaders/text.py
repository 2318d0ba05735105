"""Plain text documents (.txt, .md) to strings."""

from __future__ import annotations

from ..errors import MediaError
from ..modality import Modality, looks_like_text
from .common import check_content, os_reason


def load_text(path: str, max_bytes: int) -> str:
    """The first ``max_bytes`` of a UTF-8 text file, decoded (a cut character is dropped)."""
    head = check_content(path, Modality.TEXT)
    if not looks_like_text(head):
        raise MediaError(path, "not a UTF-8 text file (binary content)")
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes)
    except OSError as exc:
        raise MediaError(path, os_reason(exc)) from None
    text = data.decode("utf-8", errors="ignore").lstrip("\ufeff")
    if not looks_like_text(data[:4096]):
        raise MediaError(path, "not a UTF-8 text file (binary content)")
    return text
