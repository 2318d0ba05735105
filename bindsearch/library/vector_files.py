"""The vector file's format (its header, its rows' CRC-32s) and whole vector files written aside.

A new file is written under a temporary name and renamed into place, so that a file at a vector
file's name is always complete.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable

import numpy as np

MAGIC = b"bsvector"
FORMAT_VERSION = 1
FLOAT32_LE = 1  # the dtype code of little-endian float32, the only one so far
HEADER = struct.Struct("<8sIII")  # magic, format version, dim, dtype code; zeros up to HEADER_BYTES
HEADER_BYTES = 4096  # a page: a row of 1024 float32 lies in one page, not across two (half the reads)
ROW_DTYPE = np.dtype("<f4")


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
