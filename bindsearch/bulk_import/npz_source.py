"""Reading a ``.npz`` for import: each array streamed from the zip a block of rows at a time, never unpickled.

``np.load`` would read a whole array at once (a million 1024-dim vectors are 4 GB); here each member's
``.npy`` header is read, then its rows as they are needed. An array of Python objects is refused
before any of it is read: loading one runs pickle, which can run any code the file's author chose.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from ..errors import UsageError
from .source import COLUMN_NAMES, FileHeader, RowChunk, parse_tags


class _Member:
    """One array of the archive: its dtype and shape, and its rows read in order."""

    def __init__(self, archive: zipfile.ZipFile, name: str, file: str) -> None:
        self.name = name[: -len(".npy")]
        self.file = file
        self.stream: IO[bytes] = archive.open(name)
        try:
            version = np.lib.format.read_magic(self.stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(self.stream)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(self.stream)
            else:
                raise ValueError(f"unknown .npy format version {version}")
        except ValueError as exc:
            self.stream.close()
            raise UsageError(f"cannot import {file}: its array '{self.name}' is not a NumPy array ({exc})") from None
        if dtype.hasobject:
            self.stream.close()
            raise UsageError(f"cannot import {file}: its array '{self.name}' holds Python objects, which only "
                             "unpickling reads (never done here); save it as a plain array "
                             "(strings: np.array(values, dtype=str))")
        self.shape: tuple[int, ...] = tuple(shape)
        self.dtype: np.dtype = dtype
        self.row_size = int(np.prod(self.shape[1:], dtype=np.int64)) if self.shape else 1
        self.whole: np.ndarray | None = None
        if not self.shape or (fortran and len(self.shape) > 1):
            # A 0-d array is one value; a column-major one cannot be cut into rows as it streams.
            self.whole = self._read(int(np.prod(self.shape, dtype=np.int64))).reshape(
                self.shape, order="F" if fortran else "C")
        self.position = 0

    def _read(self, count: int) -> np.ndarray:
        wanted = count * self.dtype.itemsize
        try:
            data = self.stream.read(wanted)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            raise UsageError(f"cannot import {self.file}: its array '{self.name}' is damaged ({exc})") from None
        if len(data) != wanted:
            raise UsageError(f"cannot import {self.file}: its array '{self.name}' is cut short")
        return np.frombuffer(data, dtype=self.dtype)

    def rows(self, count: int) -> np.ndarray:
        """The next ``count`` rows (fewer at the end)."""
        count = min(count, self.shape[0] - self.position)
        if self.whole is not None:
            block = self.whole[self.position : self.position + count]
        else:
            block = self._read(count * self.row_size).reshape((count, *self.shape[1:]))
        self.position += count
        return block

    def close(self) -> None:
        self.stream.close()


class NpzSource:
    """A ``.npz`` with arrays ``path`` (n,), ``vector`` (n, dim), ``modality`` (one or n strings) and
    optionally ``tags`` (n JSON lists as strings, or (n, k) strings with "" for none), ``space``,
    ``fingerprint`` and ``space_spec`` (JSON); the plural names (``paths``, ``vectors``, ``modalities``)
    are read too."""

    def __init__(self, file: str) -> None:
        self.file = file
        try:
            self.archive = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a zip archive"
            raise UsageError(f"cannot import {file}: not a readable .npz file ({reason})") from None
        self.members: dict[str, _Member] = {}
        try:
            self._open_members()
            self.header = self._header()
        except BaseException:
            self.close()
            raise

    def _open_members(self) -> None:
        names = {n[: -len(".npy")]: n for n in self.archive.namelist() if n.endswith(".npy")}
        for column, choices in COLUMN_NAMES.items():
            found = next((c for c in choices if c in names), None)
            if found is not None:
                self.members[column] = _Member(self.archive, names[found], self.file)
            elif column != "tags":
                held = ", ".join(sorted(names)) or "none"
                raise UsageError(f"cannot import {self.file}: it has no '{column}' array (its arrays: {held})")
        for extra in ("space", "fingerprint", "space_spec"):
            if extra in names:
                self.members[extra] = _Member(self.archive, names[extra], self.file)

    def _header(self) -> FileHeader:
        vectors, paths = self.members["vector"], self.members["path"]
        if len(vectors.shape) != 2:
            raise UsageError(f"cannot import {self.file}: its vectors have shape {vectors.shape}, "
                             "not (rows, dims)")
        if vectors.dtype.kind != "f":
            raise UsageError(f"cannot import {self.file}: its vectors are {vectors.dtype}, not floats")
        n = vectors.shape[0]
        if paths.shape != (n,) or paths.dtype.kind not in "US":
            raise UsageError(f"cannot import {self.file}: 'path' must be {n} strings, one per vector "
                             f"(it is {paths.dtype} of shape {paths.shape})")
        modality = self.members["modality"]
        if modality.shape not in ((), (n,)) or modality.dtype.kind not in "US":
            raise UsageError(f"cannot import {self.file}: 'modality' must be one string or {n} strings "
                             f"(it is {modality.dtype} of shape {modality.shape})")
        tags = self.members.get("tags")
        if tags is not None and (len(tags.shape) not in (1, 2) or tags.shape[0] != n or tags.dtype.kind not in "US"):
            raise UsageError(f"cannot import {self.file}: 'tags' must be {n} strings (JSON lists) or {n} rows "
                             f"of strings (it is {tags.dtype} of shape {tags.shape})")
        return FileHeader(self.file, "npz", n, vectors.shape[1], self._text("space"), self._text("fingerprint"),
                          self._text("space_spec"))

    def _text(self, name: str) -> str | None:
        member = self.members.get(name)
        if member is None or member.whole is None or member.shape != () or member.dtype.kind not in "US":
            return None
        return _text(member.whole.item()) or None  # (an empty one names nothing either)

    def chunks(self, rows: int) -> Iterator[RowChunk]:
        n = self.header.rows
        modality = self.members["modality"]
        single = _text(modality.whole.item()) if modality.whole is not None and modality.shape == () else None
        for first in range(0, n, rows):
            count = min(rows, n - first)
            paths = _texts(self.members["path"].rows(count))
            modalities = [single] * count if modality.shape == () else _texts(modality.rows(count))
            vectors = self.members["vector"].rows(count)
            chunk = RowChunk(first, paths, modalities, vectors.astype(np.float32, copy=False),
                             [[] for _ in range(count)])
            if "tags" in self.members:
                _fill_tags(chunk, self.members["tags"].rows(count))
            yield chunk

    def close(self) -> None:
        for member in self.members.values():
            member.close()
        self.archive.close()


def _text(value: Any) -> str:
    """A string element as text; a bytes one (dtype S) as the OS decodes file names."""
    return os.fsdecode(value) if isinstance(value, bytes) else str(value)


def _texts(block: np.ndarray) -> list[str | None]:
    values = block.tolist()
    return values if block.dtype.kind == "U" else [_text(v) for v in values]


def _fill_tags(chunk: RowChunk, block: np.ndarray) -> None:
    if block.ndim == 1 and block.dtype.kind == "U" and (block == "[]").all():
        return  # (what export writes for items without tags: nothing to parse)
    for i, row in enumerate(block.tolist()):
        if isinstance(row, list):  # the (n, k) form: "" pads a row's tags
            chunk.tags[i] = [t for t in (_text(v).strip() for v in row) if t]
            continue
        parsed = parse_tags(_text(row))
        if parsed is None:
            chunk.problems[i] = "its tags are not a JSON list of strings"
        else:
            chunk.tags[i] = [t for t in (v.strip() for v in parsed) if t]
