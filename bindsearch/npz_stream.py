"""``.npy`` arrays and ``.npz`` archives written a block of rows at a time, so that an array larger than memory
can be written (``export`` of a big library): an uncompressed zip of ``.npy`` members, as ``np.savez`` writes,
that ``np.load`` reads back with ``allow_pickle=False``."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import numpy as np


class ArrayStream:
    """One ``.npy`` written in order to an open binary file: its header, then rows until ``shape[0]``."""

    def __init__(self, f: IO[bytes], dtype: np.dtype | str, shape: tuple[int, ...]) -> None:
        self.f, self.dtype, self.shape = f, np.dtype(dtype), tuple(shape)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_2_0(f, header)
        self.written = 0
        self.rows = self.shape[0] if self.shape else 1  # a 0-d array is one value

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.shape[1:] or self.written + len(block) > self.rows:
            raise ValueError(f"rows {block.shape} do not fit an array {self.shape} holding {self.written} rows")
        self.f.write(memoryview(block.reshape(-1).view(np.uint8)) if block.size else b"")
        self.written += len(block)

    def check_full(self) -> None:
        if self.written != self.rows:
            raise ValueError(f"an array of {self.rows} rows was closed after {self.written}")


class NpzArchive:
    """A ``.npz`` built member by member into the file ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    @contextmanager
    def member(self, name: str, dtype: np.dtype | str, shape: tuple[int, ...]) -> Iterator[ArrayStream]:
        """An array of ``shape`` to write in blocks of rows; it must be full when the block ends."""
        # force_zip64: the size is not known to the zip writer ahead, and a member may pass 4 GB.
        with self.zip.open(f"{name}.npy", "w", force_zip64=True) as f:
            stream = ArrayStream(f, dtype, shape)
            yield stream
            stream.check_full()

    def whole(self, name: str, value: np.ndarray) -> None:
        """An array written at once."""
        with self.member(name, value.dtype, value.shape) as stream:
            stream.write(value.reshape((1,) if value.ndim == 0 else value.shape))

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
