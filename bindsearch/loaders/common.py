"""Checks shared by every loader: the file exists, is readable, is not empty, is what it claims."""

from __future__ import annotations

import errno

from ..errors import MediaError
from ..modality import Modality, looks_like_text, sniff_format
from ..regular_files import open_regular

HEAD_BYTES = 64


def read_head(path: str, n: int = HEAD_BYTES) -> bytes:
    """First ``n`` bytes of a regular file, with OS errors (a FIFO or device in its place) turned into MediaError."""
    try:
        with open_regular(path) as f:
            head = f.read(n)
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
    if found is None and expected is not Modality.TEXT:
        cut = cut_signature(head)
        if cut is not None:
            raise MediaError(path, truncated_reason(cut, len(head)))
        if looks_like_text(head):
            raise MediaError(path, f"content is plain text, not {expected.value} as the name says")
    return head


# Leading bytes of the binary formats the loaders read, and how many bytes it takes to recognise
# each. A file cut before that (a few bytes long) would otherwise pass for plain text (a lone 0xFF
# byte reads as a cut UTF-8 character) or for unknown data.
_SIGNATURES = [
    (b"\xff\xd8\xff", 3, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 8, "PNG"),
    (b"GIF8", 6, "GIF"),
    (b"II*\x00", 4, "TIFF"),
    (b"MM\x00*", 4, "TIFF"),
    (b"RIFF", 12, "RIFF (WAV, AVI or WebP)"),  # "RIFF", size, then the form type
    (b"fLaC", 4, "FLAC"),
    (b"OggS", 4, "Ogg"),
    (b"ID3", 3, "MP3"),
    (b"\x1a\x45\xdf\xa3", 4, "Matroska/WebM"),
    (b"\x93NUMPY", 6, "NumPy .npy"),
    (b"PK\x03\x04", 4, "zip (.npz)"),
]


def cut_signature(head: bytes) -> str | None:
    """The format a whole file too short to be recognised begins like, else None.

    ``head`` must be the file's entire content (a file shorter than
    ``HEAD_BYTES``). A single printable ASCII byte is too weak a sign (a
    one-letter text file).
    """
    if not head or len(head) >= HEAD_BYTES:
        return None
    if len(head) == 1 and 0x20 <= head[0] < 0x7F:
        return None
    for magic, needed, name in _SIGNATURES:
        if len(head) < needed and (magic.startswith(head) or head.startswith(magic)):
            return name
    return None


def truncated_reason(format_name: str, size: int) -> str:
    """The reason for a file that ``cut_signature`` recognised: "truncated PNG file (only 3 bytes)"."""
    return f"truncated {format_name} file (only {size} byte{'' if size == 1 else 's'})"


# OS errors that are about the file (reported as such); others raised while decoding mean corrupt data.
FILE_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOENT, errno.ELOOP, errno.EISDIR, errno.EIO, errno.ENXIO}


def os_reason(exc: OSError) -> str:
    """A short reason for an OS error, without repeating the path."""
    if exc.errno == errno.EACCES:
        return "permission denied"
    if exc.errno == errno.ENOENT:
        return "no such file (deleted or moved?)"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    return exc.strerror or str(exc)
