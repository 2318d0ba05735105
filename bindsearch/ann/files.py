"""Index files: written atomically, ending with a trailer that a damaged or cut file fails.

Every file ends with ``marker (8 bytes) | payload length (u64) | CRC-32 of the payload (u32)``. The
marker says which engine wrote the file; the length and CRC catch a file cut short or damaged on disk
before any of it is parsed (FAISS would read garbage without complaint). The flat engine's payload is
one FAISS index, the layout the library has always written. Engines with several parts write them as
named sections, followed by a JSON directory of their offsets and lengths and the directory's length.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

import numpy as np

from ..regular_files import check_regular

Write = Callable[[bytes], None]

TRAILER = struct.Struct("<8sQI")
_LENGTH = struct.Struct("<Q")
_READ_CHUNK = 1 << 24


def write_atomic(path: str, marker: bytes, body: Callable[[Write], None]) -> None:
    """Write ``body``'s bytes and the trailer to a temporary file in ``path``'s folder, fsync it, rename it
    over ``path``. Nothing is left behind if any step fails (a full disk raises OSError)."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".index", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            length, crc = 0, 0

            def write(data: bytes) -> None:
                nonlocal length, crc
                length, crc = length + len(data), zlib.crc32(data, crc)
                f.write(data)

            body(write)
            f.write(TRAILER.pack(marker, length, crc))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def checked_payload(path: str) -> tuple[bytes, int]:
    """(marker, payload length) of a file whose trailer and checksum hold; ValueError saying why not."""
    try:
        check_regular(path)  # a FIFO in the file's place would block the read forever
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < TRAILER.size:
                raise ValueError("the file has no checksum: older, or cut short")
            f.seek(size - TRAILER.size)
            marker, length, crc = TRAILER.unpack(f.read(TRAILER.size))
            if length != size - TRAILER.size:
                raise ValueError("the file has no checksum: older, or cut short")
            if _crc32(f, length) != (length, crc):
                raise ValueError("the file is damaged: its checksum does not match")
    except OSError as exc:
        raise ValueError(f"unreadable index file: {exc.strerror or exc}") from None
    return marker, length


def trailer_marker(path: str) -> bytes | None:
    """The marker a file ends with, unchecked (None if it is too short or unreadable): which engine to ask
    to load it, before any engine reads the whole file to check it."""
    try:
        check_regular(path)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < TRAILER.size:
                return None
            f.seek(size - TRAILER.size)
            return TRAILER.unpack(f.read(TRAILER.size))[0]
    except OSError:
        return None


def _crc32(f: BinaryIO, length: int) -> tuple[int, int]:
    """(bytes read, CRC-32) of the first ``length`` bytes of an open file, a chunk at a time."""
    f.seek(0)
    crc, left = 0, length
    while left > 0:
        chunk = f.read(min(_READ_CHUNK, left))
        if not chunk:
            break
        crc = zlib.crc32(chunk, crc)
        left -= len(chunk)
    return length - left, crc


class SectionWriter:
    """Named parts of a payload written one after another; ``finish`` appends their directory."""

    def __init__(self, write: Write) -> None:
        self._write = write
        self._offset = 0
        self._sections: dict[str, tuple[int, int]] = {}

    def section(self, name: str, body: Callable[[Write], None]) -> None:
        start = self._offset

        def write(data: bytes) -> None:
            self._write(data)
            self._offset += len(data)

        body(write)
        self._sections[name] = (start, self._offset - start)

    def array(self, name: str, array: np.ndarray) -> None:
        self.section(name, lambda write: write(np.ascontiguousarray(array).tobytes()))

    def finish(self, meta: dict) -> None:
        directory = json.dumps({"meta": meta, "sections": self._sections}).encode()
        self._write(directory)
        self._write(_LENGTH.pack(len(directory)))


class SectionReader:
    """The sections of a payload that ``checked_payload`` has vouched for."""

    def __init__(self, f: BinaryIO, length: int) -> None:
        self._f = f
        if length < _LENGTH.size:
            raise ValueError("the file holds no section directory")
        f.seek(length - _LENGTH.size)
        (size,) = _LENGTH.unpack(f.read(_LENGTH.size))
        if size > length - _LENGTH.size:
            raise ValueError("the file's section directory is out of bounds")
        f.seek(length - _LENGTH.size - size)
        try:
            directory = json.loads(f.read(size))
            self.meta: dict = directory["meta"]
            self._sections = {name: (int(a), int(b)) for name, (a, b) in directory["sections"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"the file's section directory is unreadable ({exc})") from None
        end = length - _LENGTH.size - size
        for name, (start, count) in self._sections.items():
            if start < 0 or count < 0 or start + count > end:
                raise ValueError(f"the file's section {name!r} is out of bounds")

    def has(self, name: str) -> bool:
        return name in self._sections

    def _find(self, name: str) -> tuple[int, int]:
        if name not in self._sections:
            raise ValueError(f"the file has no {name!r} section")
        return self._sections[name]

    def read(self, name: str) -> bytes:
        start, count = self._find(name)
        self._f.seek(start)
        return self._f.read(count)

    def array(self, name: str, dtype: type, columns: int | None = None) -> np.ndarray:
        data = self.read(name)
        item = np.dtype(dtype).itemsize * (columns or 1)
        if len(data) % item:
            raise ValueError(f"the file's section {name!r} does not hold whole rows")
        array = np.frombuffer(data, dtype=dtype).copy()
        return array.reshape(-1, columns) if columns else array

    def reader(self, name: str) -> Callable[[int], bytes]:
        """A ``read(n)`` over one section, for FAISS's callback reader; it never reads past the section."""
        start, count = self._find(name)
        self._f.seek(start)
        left = count

        def read(n: int) -> bytes:
            nonlocal left
            self._f.seek(start + count - left)
            data = self._f.read(min(n, left))
            left -= len(data)
            return data

        return read


@contextmanager
def open_sections(path: str, marker: bytes) -> Iterator[SectionReader]:
    """The sections of a file written with ``marker``; ValueError if it is damaged, of another engine or
    unreadable."""
    found, length = checked_payload(path)
    if found != marker:
        raise ValueError(f"the file was written by another index engine ({found!r}, not {marker!r})")
    try:
        with open(path, "rb") as f:
            yield SectionReader(f, length)
    except OSError as exc:
        raise ValueError(f"unreadable index file: {exc.strerror or exc}") from None
