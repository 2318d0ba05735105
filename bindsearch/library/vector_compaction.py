"""Compacting a vector file: its live rows copied into a new file, so that dead rows stop taking space.

The new file has a name of its own (the next generation: ``image.f32`` -> ``image-g2.f32`` ->
``image-g3.f32``) and is complete and durable before this returns, so that the caller can point
SQLite's slots and file name at it in one transaction and only then delete the old file. A crash
at any point leaves either the old file in use (and the new one unreferenced) or the new one.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from typing import TYPE_CHECKING

import numpy as np

from .vector_store import ROW_DTYPE, header_bytes, sync_folder

if TYPE_CHECKING:
    from .vector_store import VectorStore

_GENERATION = re.compile(r"(?P<base>.+)-g(?P<number>\d+)")


def next_generation_path(path: str) -> str:
    """The first free name after ``path``'s generation, in the same folder, with the same extension.

    A name already taken (a copy left by a compaction killed before the switch) is skipped, never
    overwritten.
    """
    folder, name = os.path.split(path)
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    match = _GENERATION.fullmatch(stem)
    base, number = (match["base"], int(match["number"])) if match else (stem, 1)
    while True:
        number += 1
        candidate = os.path.join(folder, f"{base}-g{number}{dot}{extension}")
        if not os.path.lexists(candidate):
            return candidate


def compact(store: VectorStore, live_slots: np.ndarray) -> tuple[str, np.ndarray]:
    """Copy the rows at ``live_slots`` of ``store``, in that order, into a new vector file.

    Returns the new file's path and the new slot of each live slot (``new_slots[i]`` holds the row
    of ``live_slots[i]``). The rows are copied bit for bit, so their CRC-32s do not change. Streamed
    a chunk at a time; written under a temporary name, synced, then renamed.
    """
    live = np.asarray(live_slots, dtype=np.int64).reshape(-1)
    chunks = store.chunks(live)  # checks every slot before anything is written
    new_path = next_generation_path(store.path)
    folder = os.path.dirname(new_path) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(new_path)}.", suffix=".tmp", dir=folder)
    try:
        # The old file's permissions, not mkstemp's owner-only ones: a library shared with others stays shared.
        os.fchmod(fd, stat.S_IMODE(os.stat(store.path).st_mode))
        with os.fdopen(fd, "wb") as f:
            f.write(header_bytes(store.dim))
            for block in chunks:
                f.write(memoryview(np.ascontiguousarray(block, dtype=ROW_DTYPE).reshape(-1).view(np.uint8)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, new_path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    sync_folder(folder)
    return new_path, np.arange(live.size, dtype=np.int64)
