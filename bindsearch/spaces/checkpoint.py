"""Identity of a checkpoint file, cheap enough to compute on every open."""

from __future__ import annotations

import hashlib
import os

from ..errors import SpaceError
from ..regular_files import open_regular

_SAMPLE = 1 << 20  # bytes read from the start, middle and end of the file


def checkpoint_identity(path: str) -> str:
    """``size:sha256`` over the size and three 1 MiB samples of the file.

    Hashing a multi-gigabyte checkpoint in full on every open would cost
    seconds; different trained or random weights differ in every sample, so
    sampling identifies them as well in practice.
    """
    try:
        size = os.path.getsize(path)
        digest = hashlib.sha256(str(size).encode())
        with open_regular(path) as f:
            for offset in sorted({0, max(0, size // 2 - _SAMPLE // 2), max(0, size - _SAMPLE)}):
                f.seek(offset)
                digest.update(f.read(_SAMPLE))
    except FileNotFoundError:
        raise SpaceError(f"checkpoint file not found: {path}") from None
    except OSError as exc:
        raise SpaceError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    return f"{size}:{digest.hexdigest()[:32]}"
