"""Giving back the disk space of vector rows that nothing points at, by punching holes in the file.

A vector file is append-only: the row of an item removed, or embedded anew, stays where it is and no
SQLite row points at it any more (nor at the rows a killed run appended before its commit). Copying the
live rows into a new file would move every row, and every process reading the library holds slots; so
instead the file-system blocks that hold only unused rows are freed in place (Linux's ``fallocate`` with
``FALLOC_FL_PUNCH_HOLE``, on ext4, XFS, Btrfs, tmpfs and most others). The file keeps its length and every
row its slot; a freed range reads as zeros, and nothing reads it.

Where the system or its file system cannot punch holes, nothing is freed and nothing else changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys

import numpy as np

_KEEP_SIZE = 0x01  # FALLOC_FL_KEEP_SIZE
_PUNCH_HOLE = 0x02  # FALLOC_FL_PUNCH_HOLE (must come with KEEP_SIZE)
# The answers of a system or file system that has no hole punching: nothing to free there.
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


def unused_runs(live_slots: np.ndarray, rows: int) -> np.ndarray:
    """The runs of slots in [0, ``rows``) that ``live_slots`` leaves out, as (m, 2) int64 [start, end) rows
    in ascending order. Slots outside [0, rows) are ignored."""
    live = np.asarray(live_slots, dtype=np.int64).reshape(-1)
    if rows < 0:
        raise ValueError(f"a file holds no negative number of rows ({rows})")
    live = np.unique(live[(live >= 0) & (live < rows)])
    # Between consecutive live slots (and before the first, after the last) lies a run where they jump.
    bounds = np.concatenate([[-1], live, [rows]])
    starts, ends = bounds[:-1] + 1, bounds[1:]
    keep = ends > starts
    return np.stack([starts[keep], ends[keep]], axis=1).astype(np.int64).reshape(-1, 2)


def block_ranges(runs: np.ndarray, header: int, row_bytes: int, block: int) -> np.ndarray:
    """The byte ranges, (m, 2) [start, end), of whole ``block``-sized blocks lying inside the runs of rows
    ``runs`` (see ``unused_runs``) of a file whose row ``s`` starts at ``header + s * row_bytes``. A block
    that also holds part of a live row is never among them."""
    runs = np.asarray(runs, dtype=np.int64).reshape(-1, 2)
    if header < 0 or row_bytes <= 0 or block <= 0:
        raise ValueError(f"unusable layout: header {header}, rows of {row_bytes} bytes, blocks of {block}")
    first = header + runs[:, 0] * row_bytes
    last = header + runs[:, 1] * row_bytes
    start = -(-first // block) * block  # rounded up to a block
    end = last // block * block  # rounded down
    keep = end > start
    return np.stack([start[keep], end[keep]], axis=1).reshape(-1, 2)


def punch(fd: int, ranges: np.ndarray) -> bool:
    """Free the byte ranges (m, 2) of the open file ``fd``, keeping its size; False where the system or the
    file system cannot (nothing was changed then). Other errors are raised as OSError."""
    ranges = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
    call = _fallocate()
    if call is None:
        return False
    for start, end in ranges.tolist():
        if call(fd, _KEEP_SIZE | _PUNCH_HOLE, start, end - start) != 0:
            code = ctypes.get_errno()
            if code in _UNSUPPORTED:
                return False
            raise OSError(code, os.strerror(code))
    return True


def allocated_bytes(fd: int) -> int:
    """What the open file ``fd`` takes on disk (its allocated blocks), not its length."""
    st = os.fstat(fd)
    return int(getattr(st, "st_blocks", 0)) * 512 if hasattr(st, "st_blocks") else int(st.st_size)


_CALL: list = []


def _fallocate():
    """libc's 64-bit ``fallocate`` as a ctypes function, None off Linux."""
    if not _CALL:
        function = None
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
                function = getattr(libc, "fallocate64", None) or libc.fallocate
                function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
                function.restype = ctypes.c_int
            except (OSError, AttributeError):
                function = None
        _CALL.append(function)
    return _CALL[0]
