"""Opening files that must be regular files.

A FIFO, a device or a socket found where a file is expected would make a
plain ``open`` or ``read`` wait for a writer forever (a FIFO) or read without
end (``/dev/zero``). Every open of a user's file goes through ``open_regular``,
which opens without blocking, checks the kind of what it opened, and refuses
anything but a regular file; checking the opened descriptor (not the path
beforehand) also catches a file swapped for a FIFO between a scan and a read.

Decoders that open a path themselves (Pillow, libsndfile, FFmpeg) are given
``regular_path``'s path instead of the user's: on Linux it names the very file
already opened and checked, so a FIFO put in its place a moment later is never
opened.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegularFileError(OSError):
    """The path names something other than a regular file; ``strerror`` says what, in words."""

    def __init__(self, path: str, kind: str) -> None:
        # EISDIR and its words for a directory keep the handling and messages callers already have for it.
        if kind == "a directory":
            super().__init__(errno.EISDIR, "is a directory, not a file", path)
        else:
            # ENXIO, what opening a FIFO for writing without a reader gives: an error of the file, not of its data.
            super().__init__(errno.ENXIO, f"is {kind}, not a regular file", path)


class FileTooLargeError(OSError):
    """A file read whole is larger than its reader's limit."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__(errno.EFBIG, f"is larger than {limit:,} bytes", path)


def file_kind(mode: int) -> str | None:
    """What a ``st_mode`` names, in words ("a FIFO (named pipe)"), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, words in _KINDS:
        if test(mode):
            return words
    return "not a regular file"


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a regular file for binary reading; NotRegularFileError (an OSError) for anything else.

    O_NONBLOCK makes opening a FIFO return at once rather than wait for a
    writer; the descriptor is set back to blocking once it is known to be a
    regular file (where the flag means nothing anyway).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFileError(os.fspath(path), kind)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_regular(path: str | os.PathLike) -> None:
    """Raise NotRegularFileError (or the OSError of opening it) unless ``path`` is a readable regular file."""
    open_regular(path).close()


def read_small_file(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The whole content of a regular file of at most ``max_bytes``; FileTooLargeError beyond (never read further)."""
    with open_regular(path) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLargeError(os.fspath(path), max_bytes)
    return data


# Where the system names an open descriptor as a path (Linux): opening it opens that very file again.
_FD_FOLDER = "/proc/self/fd"
_FD_PATH = re.compile(r"'?/proc/self/fd/\d+'?")


@contextmanager
def regular_path(path: str | os.PathLike) -> Iterator[str]:
    """A path for a decoder that opens files itself, naming the regular file ``path`` names now.

    ``path`` is opened and checked as ``open_regular`` does; while the block runs, the path yielded
    names that open file (``/proc/self/fd/N``) where the system has such paths, else ``path`` itself.
    """
    with open_regular(path) as f:
        yield f"{_FD_FOLDER}/{f.fileno()}" if os.path.isdir(_FD_FOLDER) else os.fspath(path)


def without_fd_paths(text: str) -> str:
    """A decoder's message with the descriptor paths of ``regular_path`` put back as "the file"."""
    return _FD_PATH.sub("the file", text)
