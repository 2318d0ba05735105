"""Checks shared by every loader: the file exists, is readable, is not empty, is what it claims."""

from __future__ import annotations

import errno
import os

from ..errors import MediaError
from ..modality import Modality, looks_like_text, sniff_format

HEAD_BYTES = 64


def read_head(path: str, n: int = HEAD_BYTES) -> bytes:
    """First ``n`` bytes of a file, with OS errors turned into MediaError."""
    try:
        if os.path.isdir(path):
            raise MediaError(path, "is a directory, not a file")
        with open(path, "rb") as f:
            head = f.read(n)
    except MediaError:
        raise
    except OSError as exc:
        raise MediaError(path, os_reason(exc)) from None
    if not head:
        raise MediaError(path, "empty file (0 bytes)")
    return head


def check_content(path: str, expected: Modality) -> bytes:
    """Refuse a file whose leading bytes show it is not of the ``expected`` modality."""
    head = read_head(path)
    found = sniff_format(head)
    if found is not None and found[1] is not expected and not (
        # An MP4/MOV/WebM container may hold only sound, and a soundtrack is audio.
        found[1] is Modality.VIDEO and expected is Modality.AUDIO
    ):
        raise MediaError(path, f"content is {found[0]} ({found[1].value}), not {expected.value} as the name says")
    if found is None and expected is not Modality.TEXT and looks_like_text(head):
        raise MediaError(path, f"content is plain text, not {expected.value} as the name says")
    return head


# OS errors that are about the file (reported as such); others raised while decoding mean corrupt data.
FILE_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOENT, errno.ELOOP, errno.EISDIR, errno.EIO}


def os_reason(exc: OSError) -> str:
    """A short reason for an OS error, without repeating the path."""
    if exc.errno == errno.EACCES:
        return "permission denied"
    if exc.errno == errno.ENOENT:
        return "no such file (deleted or moved?)"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    return exc.strerror or str(exc)
