"""The vector file's format (its header, its rows' CRC-32s) and whole vector files written aside.

A new file, empty or a compacted copy, is written under a temporary name and renamed into place,
so that a file at a vector file's name is always complete. A compacted copy has a name of its own
(the next generation: ``image.f32`` -> ``image-g2.f32`` -> ``image-g3.f32``) and is durable
before ``compact`` returns, so that the caller can point SQLite's slots and file name at it in
one transaction and only then delete the old file: a crash at any point leaves the old file in
use (the new one unreferenced) or the new one.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .vector_store import VectorStore

MAGIC = b"bsvector"
FORMAT_VERSION = 1
FLOAT32_LE = 1  # the dtype code of little-endian float32, the only one so far
HEADER = struct.Struct("<8sIII")  # magic, format version, dim, dtype code; zeros up to HEADER_BYTES
HEADER_BYTES = 4096  # a page: a row of 1024 float32 lies in one page, not across two (half the reads)
ROW_DTYPE = np.dtype("<f4")
_GENERATION = re.compile(r"(?P<base>.+)-g(?P<number>\d+)")


def header_bytes(dim: int) -> bytes:
    return HEADER.pack(MAGIC, FORMAT_VERSION, dim, FLOAT32_LE).ljust(HEADER_BYTES, b"\0")


def header_problem(head: bytes, dim: int) -> str | None:
    """What makes ``head`` (a file's first HEADER_BYTES) not the header of a vector file of ``dim``, in words
    that follow the file's name; None when it is one."""
    if len(head) < HEADER_BYTES:
        return "is cut short: its header is incomplete"
    magic, version, stored_dim, dtype = HEADER.unpack_from(head)
    if magic != MAGIC:
        return "is not a bindsearch vector file (its first bytes are wrong)"
    if version != FORMAT_VERSION:
        return f"is of format {version}; this bindsearch reads format {FORMAT_VERSION}"
    if dtype != FLOAT32_LE:
        return f"holds values of unknown type {dtype}"
    if stored_dim != dim:
        return f"holds {stored_dim}-dimensional vectors, not {dim}"
    return None


def row_crcs(rows: np.ndarray) -> np.ndarray:
    """The CRC-32 of each row's bytes as stored (little-endian float32), shape (n,) uint32."""
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.dtype != ROW_DTYPE:
        raise ValueError(f"expected an (n, dim) little-endian float32 matrix, got {rows.dtype} {rows.shape}")
    rows = np.ascontiguousarray(rows)
    return np.fromiter((zlib.crc32(row) for row in rows), dtype=np.uint32, count=rows.shape[0])


def sync_folder(folder: str) -> None:
    """Make a new or renamed entry of ``folder`` durable (where folders can be opened: not on Windows)."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_vector_file(path: str, dim: int, blocks: Iterable[np.ndarray] = (), mode: int | None = None) -> None:
    """Write a vector file of ``dim`` holding ``blocks`` (each (n, dim)) under a temporary name, sync it,
    rename it to ``path`` and sync the folder. ``mode``: its permissions (else the umask's)."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}")  # (a leftover of the same name is truncated)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(header_bytes(dim))
            for block in blocks:
                f.write(memoryview(np.ascontiguousarray(block, dtype=ROW_DTYPE).reshape(-1).view(np.uint8)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    sync_folder(folder)


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
    of ``live_slots[i]``). The rows are copied bit for bit, so their CRC-32s do not change; they are
    streamed a chunk at a time. The new file gets the old one's permissions: a shared library stays
    shared. The old file is left as it is.
    """
    live = np.asarray(live_slots, dtype=np.int64).reshape(-1)
    chunks = store.chunks(live)  # checks every slot before anything is written
    new_path = next_generation_path(store.path)
    write_vector_file(new_path, store.dim, chunks, mode=stat.S_IMODE(os.stat(store.path).st_mode))
    return new_path, np.arange(live.size, dtype=np.int64)
