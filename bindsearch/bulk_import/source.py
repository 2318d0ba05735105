"""What an import reads from a file, whatever its format: a header, then chunks of rows as columns."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..errors import UsageError

FORMATS = {".npz": "npz", ".parquet": "parquet"}

# The names each column may have in a file: export's own first, then plurals that hand-made files use.
COLUMN_NAMES = {
    "path": ("path", "paths"),
    "modality": ("modality", "modalities"),
    "vector": ("vector", "vectors"),
    "tags": ("tags",),
}


@dataclass(frozen=True)
class FileHeader:
    """What a file says of itself before any row is read.

    ``dim`` is the length of its vectors (for Parquet lists of varying length, that of the first
    vector); ``space`` and ``fingerprint`` are None in a file that does not carry them (or leaves them
    empty), and so is ``space_spec``: the JSON text of the space's spec, as a library stores it, from
    which a new library of the file's own space can be made (``file_space``).
    """

    path: str
    format: str
    rows: int
    dim: int
    space: str | None = None
    fingerprint: str | None = None
    space_spec: str | None = None


@dataclass
class RowChunk:
    """Consecutive rows of a file, from row ``first`` on (0-based), as columns of equal length.

    ``vectors`` is (n, dim) float32 as read (not yet checked or normalised); a row whose vector could
    not be read at all holds zeros there and its reason in ``problems`` (keyed by position in the
    chunk), as does a row whose tags could not be read. A missing path or modality is None.
    """

    first: int
    paths: list[str | None]
    modalities: list[str | None]
    vectors: np.ndarray
    tags: list[list[str]]
    problems: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.paths)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != n or len(self.modalities) != n or len(self.tags) != n:
            raise ValueError(f"chunk columns disagree: {n} paths, {len(self.modalities)} modalities, "
                             f"vectors {self.vectors.shape}, {len(self.tags)} tag lists")


class VectorSource(Protocol):
    """An open file to import: its header, and its rows a chunk at a time."""

    header: FileHeader

    def chunks(self, rows: int) -> Iterator[RowChunk]: ...

    def close(self) -> None: ...


def import_format(file: str | os.PathLike[str]) -> str:
    """``npz`` or ``parquet``, from the file's name; UsageError for another."""
    suffix = os.path.splitext(os.fspath(file))[1].lower()
    if suffix not in FORMATS:
        raise UsageError(f"cannot import {os.fspath(file)}: name a .npz or .parquet file")
    return FORMATS[suffix]


def open_source(file: str | os.PathLike[str]) -> VectorSource:
    """The file opened for import, its header read; UsageError for a file that cannot be one."""
    fmt = import_format(file)
    path = os.fspath(file)
    if not os.path.exists(path):
        raise UsageError(f"cannot import {path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"cannot import {path}: it is a folder, not a file")
    if fmt == "npz":
        from .npz_source import NpzSource

        return NpzSource(path)
    from .parquet_source import ParquetSource

    return ParquetSource(path)


def parse_tags(text: str) -> list[str] | None:
    """Tags as export writes them in a .npz: a JSON list of strings (an empty text: none). None if it is not."""
    if text == "[]" or not text.strip():
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        return None
    return value
