"""Exceptions with messages a user can act on.

Every error bindsearch raises on purpose derives from BindsearchError; the CLI
prints its message as one line and exits with the error's ``exit_code``.
"""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for one-line errors."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class BindsearchError(Exception):
    """Base class: a problem the user can fix (bad argument, bad file, missing weights)."""

    exit_code = 2


class UsageError(BindsearchError):
    """An argument or combination of arguments that cannot work."""


class SpaceError(BindsearchError):
    """A space name or space file that cannot be used, or weights that cannot be had."""


class SpaceMismatchError(BindsearchError):
    """A library was opened with a space other than the one it was built with."""


class LibraryError(BindsearchError):
    """A library folder that is missing, unreadable or from an unknown schema."""


class LibraryLockedError(LibraryError):
    """Another process is writing to the library."""


class ReadOnlyLibraryError(LibraryError):
    """A change asked of a library this process cannot write (read-only media, another user's files)."""


class MediaError(BindsearchError):
    """One input file (or value) that cannot be turned into model input.

    Carries the path and a one-line reason separately, so that an indexing run
    can record the reason per file and go on.
    """

    def __init__(self, path: str | None, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


class NothingToEmbed(MediaError):
    """A readable file that holds nothing of the modality asked for (a video without a soundtrack).

    Not a failure: the indexer records it as skipped and does not try again
    until the file changes.
    """


class VectorFileError(LibraryError, ValueError):
    """A library's vector file that cannot be used (not one, another dimension, cut short, not a regular
    file) or that is asked for rows it does not hold."""


class UnusableVectorFile(VectorFileError):
    """A vector file that holds no rows it could give (not a regular file, or not a vector file of this
    library): what pointed into it is lost, and a writer replaces it."""


class DiskFullError(LibraryError):
    """The disk holding the library has no room left for what a command writes."""


class UnusableEmbedding(MediaError):
    """The model gave a vector that cannot be stored or searched (not finite, or all zero).

    Raised by an encoder for a batch in which some rows are unusable:
    ``vectors`` is the batch's output and ``bad`` the positions of those rows,
    so that a caller can keep the others and fail only the inputs they came from.
    """

    def __init__(self, reason: str, vectors: object = None, bad: tuple[int, ...] = ()) -> None:
        super().__init__(None, reason)
        self.vectors = vectors
        self.bad = bad
