"""Content hashes: how a moved, renamed or copied file is recognised without embedding it again."""

from __future__ import annotations

import hashlib

from bindsearch.errors import MediaError
from bindsearch.loaders.common import os_reason
from bindsearch.regular_files import open_regular

_CHUNK = 1 << 20


def content_hash(path: str) -> str:
    """SHA-256 of the file's bytes, hex; raises MediaError if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open_regular(path) as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except IsADirectoryError:
        raise MediaError(path, "is a directory, not a file") from None
    except OSError as exc:
        raise MediaError(path, os_reason(exc)) from None
    return digest.hexdigest()
