"""One append-only file of full-precision vectors, read a few rows at a time.

Layout: a 4096-byte header (magic, format version, dimension, dtype code) then rows of ``dim``
little-endian float32; row ``s`` (its slot) starts at byte ``HEADER_BYTES + s * dim * 4``. SQLite
keeps each item's slot and its row's CRC-32; this file keeps nothing else.

A row, once durable, never moves or changes, so readers in other processes need no lock. A process
killed while appending leaves at most a torn last row (cut when the file is next opened for writing)
and whole rows that no SQLite row points at; those, and the rows of items removed or embedded anew,
give their disk space back when ``bindsearch optimize`` punches holes over them (see ``holes``).

Rows are read with positioned reads (one per run of consecutive slots), not through a memory map:
a map of a file in the page cache brings whole large folios into the process (reading 100 random
rows of a 200 MB file mapped 120 MB on Linux 6.18, ext4), a map without readahead streams at a
tenth of the speed, and a file cut short under a map kills its reader with SIGBUS where a read
gives a clear error. The page cache is shared all the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from ..errors import UnusableVectorFile, VectorFileError
from ..regular_files import file_kind
from .holes import allocated_bytes, block_ranges, punch, unused_runs
from .vector_files import HEADER_BYTES, ROW_DTYPE, header_problem, row_crcs, write_vector_file

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, writers are not serialised
    fcntl = None  # type: ignore[assignment]

CHUNK_BYTES = 1 << 24  # rows read per step by chunks() when no size is given: memory stays bounded
_sync = getattr(os, "fdatasync", os.fsync)  # the file's data and size, without its times


class VectorStore:
    """The vector file at ``path``, of ``dim`` float32 values a row.

    Opened for writing, a missing file is created, a torn last row is cut, and the file is locked
    against a second writer; opened for reading, the file must exist. Rows appended by a writer in
    another process become readable as soon as their ``append`` has returned there.
    """

    def __init__(self, path: str | os.PathLike[str], dim: int, writable: bool = False) -> None:
        if int(dim) <= 0:
            raise ValueError(f"a vector file's dimension must be positive, not {dim}")
        self.path = os.fspath(path)
        self.dim = int(dim)
        self.writable = writable
        self.row_bytes = self.dim * ROW_DTYPE.itemsize
        self._rows = 0  # whole rows, as last seen (a writer's own count is always current)
        if writable and not os.path.lexists(self.path):
            self._create()
        self._fd = self._open()
        try:
            self._check_header()
            if writable:
                self._lock()
                self._rows = self._cut_torn_row()
            else:
                self._rows = self.rows
        except BaseException:
            os.close(self._fd)
            raise

    # -- opening -------------------------------------------------------------------------------

    def _create(self) -> None:
        try:
            write_vector_file(self.path, self.dim)
        except OSError as exc:
            raise VectorFileError(f"vector file {self.path} cannot be created: {exc.strerror or exc}") from None

    def _open(self) -> int:
        # O_NONBLOCK: a FIFO in the file's place is opened at once (and refused), never waited on.
        flags = (os.O_RDWR if self.writable else os.O_RDONLY) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise VectorFileError(f"vector file {self.path} is missing") from None
        except IsADirectoryError:
            raise UnusableVectorFile(f"vector file {self.path} is a folder, not a regular file") from None
        except OSError as exc:
            raise VectorFileError(f"vector file {self.path} cannot be opened: {exc.strerror or exc}") from None
        kind = file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            os.close(fd)
            raise UnusableVectorFile(f"vector file {self.path} is {kind}, not a regular file")
        os.set_blocking(fd, True)
        return fd

    def _check_header(self) -> None:
        problem = header_problem(os.pread(self._fd, HEADER_BYTES, 0), self.dim)
        if problem is not None:
            raise UnusableVectorFile(f"vector file {self.path} {problem}")

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise VectorFileError(f"vector file {self.path} is already open for writing") from None

    def _cut_torn_row(self) -> int:
        """Cut a last row that a killed append left part-written; the number of whole rows."""
        size = os.fstat(self._fd).st_size
        rows = (size - HEADER_BYTES) // self.row_bytes
        if size != HEADER_BYTES + rows * self.row_bytes:
            os.ftruncate(self._fd, HEADER_BYTES + rows * self.row_bytes)
            _sync(self._fd)
        return rows

    # -- writing -------------------------------------------------------------------------------

    def append(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Write ``vectors`` (n, dim) at the end and make them durable: their (slots (n,) int64, CRC-32s (n,) uint32).

        Once this returns, the rows survive a crash, so SQLite rows pointing at them may be committed.
        """
        if not self.writable:
            raise ValueError(f"vector file {self.path} is open for reading only")
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors must have shape (n, {self.dim}), got {vectors.shape}")
        rows = np.ascontiguousarray(vectors, dtype=ROW_DTYPE)
        first, offset = self._rows, HEADER_BYTES + self._rows * self.row_bytes
        if rows.shape[0]:
            data = memoryview(rows.reshape(-1).view(np.uint8))
            try:
                written = 0
                while written < len(data):
                    written += os.pwrite(self._fd, data[written:], offset + written)
                _sync(self._fd)
            except BaseException:
                # After a failed write (a full disk) the file ends at a whole row, for the next append.
                try:
                    os.ftruncate(self._fd, offset)
                except OSError:
                    pass
                raise
            self._rows += rows.shape[0]
        return np.arange(first, first + rows.shape[0], dtype=np.int64), row_crcs(rows)

    # -- reading -------------------------------------------------------------------------------

    @property
    def rows(self) -> int:
        """How many whole rows the file holds now (a reader sees other processes' appends)."""
        if not self.writable:
            self._rows = max(0, (os.fstat(self._fd).st_size - HEADER_BYTES) // self.row_bytes)
        return self._rows

    def read(self, slots: np.ndarray) -> np.ndarray:
        """The rows at ``slots``, in the order asked: (n, dim) float32."""
        return self._gather(self._checked(slots))

    def chunks(self, slots: np.ndarray | None = None, size: int | None = None) -> Iterator[np.ndarray]:
        """The rows at ``slots`` (every row when None) in that order, at most ``size`` rows at a time.

        The slots are checked before the first chunk; only one chunk is in memory at a time.
        """
        size = max(1, CHUNK_BYTES // self.row_bytes) if size is None else int(size)
        if size <= 0:
            raise ValueError(f"chunk size must be positive, not {size}")
        if slots is None:  # (no array of every slot: a file of 10^8 rows would need 800 MB for it)
            total = self.rows
            return (self._gather(np.arange(begin, min(begin + size, total))) for begin in range(0, total, size))
        slots = self._checked(slots)
        return (self._gather(slots[begin : begin + size]) for begin in range(0, slots.size, size))

    def verify(self, slots: np.ndarray, crcs: np.ndarray) -> np.ndarray:
        """The slots whose row does not have the CRC-32 given, or lies beyond the file's end: a damaged file.

        Reads the rows a chunk at a time; the bad slots come back in the order given.
        """
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        crcs = np.asarray(crcs, dtype=np.uint32).reshape(-1)
        if slots.shape != crcs.shape:
            raise ValueError(f"{slots.size} slots but {crcs.size} checksums")
        bad = slots >= self.rows
        held = np.flatnonzero(~bad)
        step = max(1, CHUNK_BYTES // self.row_bytes)
        for begin, block in zip(range(0, held.size, step), self.chunks(slots[held], step)):
            positions = held[begin : begin + step]
            bad[positions] = row_crcs(block.astype(ROW_DTYPE, copy=False)) != crcs[positions]
        return slots[bad]

    def _checked(self, slots: np.ndarray) -> np.ndarray:
        """``slots`` as int64 (n,), every one a row of the file."""
        slots = np.asarray(slots)
        if slots.size and not np.issubdtype(slots.dtype, np.integer):
            raise ValueError(f"slots must be integers, got {slots.dtype}")
        slots = slots.astype(np.int64, copy=False).reshape(-1)
        if not slots.size:
            return slots
        low, high = int(slots.min()), int(slots.max())
        if low < 0:
            raise VectorFileError(f"vector file {self.path}: slot {low} is not a row number")
        if high >= self._rows and high >= self.rows:  # (a reader looks again: the file may have grown)
            raise VectorFileError(f"vector file {self.path} holds {self._rows} rows: slot {high} is beyond its end")
        return slots

    def _gather(self, slots: np.ndarray) -> np.ndarray:
        """Rows at checked ``slots``: one positioned read per run of consecutive slots, taken in file order.

        A run whose rows go to consecutive places of the result (a single row, or a run of slots asked
        in order) is read straight into its place; only the others pass through a buffer of their own.
        """
        order = np.argsort(slots, kind="stable")
        ordered = slots[order]
        found = np.empty((slots.size, self.dim), ROW_DTYPE)
        starts = np.flatnonzero(np.diff(ordered, prepend=-2) != 1)  # where a run of consecutive slots begins
        ends = np.append(starts[1:], slots.size)
        jumps = np.concatenate([[0], np.cumsum(np.diff(order) != 1)])  # places not following the one before
        direct = jumps[ends - 1] == jumps[starts]
        buffer = memoryview(found.reshape(-1).view(np.uint8))
        runs = zip(starts.tolist(), ends.tolist(), (HEADER_BYTES + ordered[starts] * self.row_bytes).tolist(),
                   direct.tolist(), order[starts].tolist())
        for begin, end, offset, straight, place in runs:
            if straight:
                self._read_into(buffer[place * self.row_bytes : (place + end - begin) * self.row_bytes], offset)
            else:
                rows = np.empty((end - begin, self.dim), ROW_DTYPE)
                self._read_into(memoryview(rows.reshape(-1).view(np.uint8)), offset)
                found[order[begin:end]] = rows
        return found.astype(np.float32, copy=False)

    def _read_into(self, target: memoryview, offset: int) -> None:
        done = os.preadv(self._fd, [target], offset)
        while done < len(target):  # (rare: a read cut short by a signal, or a file cut short since)
            got = os.preadv(self._fd, [target[done:]], offset + done)
            if got == 0:  # the file was cut shorter since its size was read: damaged, or replaced in place
                raise VectorFileError(f"vector file {self.path} ends before byte {offset + len(target)}")
            done += got

    # -- unused rows and closing ---------------------------------------------------------------

    def free_unused(self, live_slots: np.ndarray) -> int:
        """Give back the disk space of every row but those at ``live_slots`` (the rows SQLite points at); the
        bytes freed (0 where the file system cannot punch holes). Only for a writer, under the library's
        writer lock, so that no row becomes live meanwhile."""
        if not self.writable:
            raise ValueError(f"vector file {self.path} is open for reading only")
        runs = unused_runs(live_slots, self._rows)
        before = allocated_bytes(self._fd)
        block = max(512, int(getattr(os.fstat(self._fd), "st_blksize", 4096) or 4096))
        if not runs.size or not punch(self._fd, block_ranges(runs, HEADER_BYTES, self.row_bytes, block)):
            return 0
        return max(0, before - allocated_bytes(self._fd))

    @property
    def allocated_bytes(self) -> int:
        """What the file takes on disk now (less than its length once holes are punched)."""
        return allocated_bytes(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # (closing drops the writer's lock)
            self._fd = -1

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
