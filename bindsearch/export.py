"""Writing a library's vectors and metadata out: ``.npz`` (NumPy) or ``.parquet`` (Apache Arrow).

Both hold one row per embedded item with the columns ``path``, ``modality``,
``vector`` (float32, the library's dimension) and ``tags``, plus the space's
name, fingerprint and spec (the JSON a library stores to rebuild its space), so
that a bulk import can tell which model made them, and make a new library of
that space. The ``.npz`` file needs no pickle to load: ``path`` and
``modality`` are string arrays, ``tags`` a JSON list per row as a string, and
``space``, ``fingerprint`` and ``space_spec`` 0-d string arrays. The
``.parquet`` file has ``vector`` as a fixed-size list of float32, ``tags`` as a
list of strings, and the space in the schema's metadata (``bindsearch.space``,
``bindsearch.fingerprint``, ``bindsearch.space_spec``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .errors import UsageError
from .filters import Filters
from .modality import Modality
from .npz_stream import NpzArchive

if TYPE_CHECKING:
    from .library import LibraryStore as Library

FORMATS = {".npz": "npz", ".parquet": "parquet"}


@dataclass(frozen=True)
class SpaceLabel:
    """What an exported file says of the space its vectors are in: name, fingerprint, and the spec's JSON."""

    name: str
    fingerprint: str
    spec: str


@dataclass(frozen=True)
class ExportReport:
    """What ``export`` wrote: the file, its format, how many items (per modality), and the space."""

    path: str
    format: str
    items: int
    dim: int
    space: str
    fingerprint: str
    modalities: dict[str, int] = field(default_factory=dict)


@dataclass
class ExportRows:
    """The rows to write, as columns: ``vectors`` is (n, dim) float32, the rest n entries each."""

    paths: list[str]
    modalities: list[str]
    vectors: np.ndarray
    tags: list[list[str]]

    def __post_init__(self) -> None:
        n = len(self.paths)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != n or len(self.modalities) != n or len(self.tags) != n:
            raise ValueError(f"export columns disagree: {n} paths, {len(self.modalities)} modalities, "
                             f"vectors {self.vectors.shape}, {len(self.tags)} tag lists")

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def vector_blocks(self, rows: int) -> Iterator[np.ndarray]:
        """The vectors in row order, at most ``rows`` at a time."""
        for begin in range(0, len(self.paths), rows):
            yield self.vectors[begin : begin + rows]


@dataclass
class StoredRows:
    """The rows to write with their vectors still in the library: read a block at a time as they are written,
    so that exporting a million items holds one block of vectors, not all of them. ``parts`` are the vector
    slots of each index's rows, in row order."""

    paths: list[str]
    modalities: list[str]
    tags: list[list[str]]
    parts: list[tuple[tuple[Modality, bool], np.ndarray]]
    library: Library
    dim: int

    def vector_blocks(self, rows: int) -> Iterator[np.ndarray]:
        for key, slots in self.parts:
            yield from self.library.vectors.chunks(key, slots, rows)


def export_format(file: str | os.PathLike[str]) -> str:
    """``npz`` or ``parquet``, from the file's name; UsageError for another."""
    suffix = os.path.splitext(os.fspath(file))[1].lower()
    if suffix not in FORMATS:
        raise UsageError(f"cannot export to {os.fspath(file)}: name a .npz or .parquet file")
    return FORMATS[suffix]


def export_library(library: Library, file: str | os.PathLike[str], *,
                   modalities: Sequence[Modality | str] | None = None, paths: Sequence[str] = ()) -> ExportReport:
    """Write the embedded items of ``library`` (of ``modalities``, under or matching ``paths``) to ``file``.

    ``paths`` are patterns as ``query --path`` takes them. The file is written
    whole or not at all (a temporary file renamed into place).
    """
    fmt = export_format(file)
    if fmt == "parquet":
        _pyarrow()  # before any work
    rows = collect_rows(library, modalities, paths)
    target = os.path.abspath(os.fspath(file))
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise UsageError(f"cannot export to {os.fspath(file)}: no folder {folder}")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-export-", suffix=os.path.splitext(target)[1], dir=folder)
    os.close(fd)
    label = SpaceLabel(library.space_name, library.fingerprint, json.dumps(library.space.spec, sort_keys=True))
    try:
        if fmt == "npz":
            write_npz(tmp, rows, label)
        else:
            write_parquet(tmp, rows, label)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    counts: dict[str, int] = {}
    for m in rows.modalities:
        counts[m] = counts.get(m, 0) + 1
    return ExportReport(target, fmt, len(rows.paths), library.dim, library.space_name, library.fingerprint,
                        dict(sorted(counts.items())))


def collect_rows(library: Library, modalities: Sequence[Modality | str] | None, paths: Sequence[str]) -> StoredRows:
    """The embedded items to export, by modality then item id, with their tags and where their vectors lie."""
    wanted = ([Modality.parse(m) for m in modalities] if modalities else library.modalities_with_vectors())
    filters = Filters(paths=tuple(paths))
    out_paths: list[str] = []
    out_modalities: list[str] = []
    parts: list[tuple[tuple[Modality, bool], np.ndarray]] = []
    ids_all: list[int] = []
    for modality in dict.fromkeys(wanted):
        selected = library.select(modality, filters)
        slots = library.slot_map(modality)
        ids = slots.ids[np.isin(slots.ids, selected)]
        found = library.items(ids.tolist())
        out_paths += [found[int(i)][0] for i in ids]
        out_modalities += [modality.value] * len(ids)
        parts.append(((modality, False), slots.slots_of(ids)))
        ids_all += ids.tolist()
    tags = library.tags_of(ids_all)
    return StoredRows(out_paths, out_modalities, [list(tags.get(i, ())) for i in ids_all], parts, library,
                      library.dim)


# Rows per block written: 16 MiB of vectors at 1024 dimensions.
_BLOCK = 4096


def write_npz(file: str, rows: ExportRows | StoredRows, space: SpaceLabel) -> None:
    """The rows as a ``.npz`` of plain arrays (loadable with ``allow_pickle=False``), written a block at a time."""
    n = len(rows.paths)
    tags = [json.dumps(t, ensure_ascii=False) for t in rows.tags]
    with NpzArchive(file) as npz:
        for name, column in (("path", rows.paths), ("modality", rows.modalities), ("tags", tags)):
            width = max((len(value) for value in column), default=1) or 1
            with npz.member(name, f"<U{width}", (n,)) as member:
                for begin in range(0, n, _BLOCK * 16):
                    member.write(np.array(column[begin : begin + _BLOCK * 16], dtype=f"<U{width}"))
        with npz.member("vector", np.float32, (n, rows.dim)) as member:
            for block in rows.vector_blocks(_BLOCK):
                member.write(block)
        npz.whole("space", np.array(space.name))
        npz.whole("fingerprint", np.array(space.fingerprint))
        npz.whole("space_spec", np.array(space.spec))
    _sync(file)


def write_parquet(file: str, rows: ExportRows | StoredRows, space: SpaceLabel) -> None:
    """The rows as a Parquet table, ``vector`` a fixed-size list column, written a row group at a time."""
    pa = _pyarrow()
    import pyarrow.parquet as pq

    bad = next((p for p in rows.paths if not _utf8(p)), None)
    if bad is not None:
        raise UsageError(f"cannot export {bad!r} to parquet: its name is not UTF-8 text (export to .npz)")
    schema = pa.schema([("path", pa.string()), ("modality", pa.string()),
                        ("vector", pa.list_(pa.float32(), rows.dim)), ("tags", pa.list_(pa.string()))],
                       metadata={"bindsearch.space": space.name, "bindsearch.fingerprint": space.fingerprint,
                                 "bindsearch.space_spec": space.spec})
    # A row group is encoded in memory whole, at several times the size of its vectors (measured: 4 096 rows of
    # 1024 dimensions grew the process by 130 MiB, 1 024 rows by under 100): 2 048 rows (8 MiB of vectors) a group.
    # Only the modality column gains from a dictionary; unique paths and floats would only fill one.
    group = _BLOCK // 2
    with pq.ParquetWriter(file, schema, use_dictionary=["modality"]) as writer:
        begin = 0
        blocks = rows.vector_blocks(group)
        for vectors in blocks:
            end = begin + len(vectors)
            writer.write_table(pa.table({
                "path": pa.array(rows.paths[begin:end], type=pa.string()),
                "modality": pa.array(rows.modalities[begin:end], type=pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32()),
                    rows.dim),
                "tags": pa.array(rows.tags[begin:end], type=pa.list_(pa.string())),
            }, schema=schema))
            begin = end
        if begin == 0:
            writer.write_table(schema.empty_table())
    _sync(file)


def _sync(file: str) -> None:
    fd = os.open(file, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _pyarrow():  # type: ignore[no-untyped-def]
    try:
        import pyarrow
    except ImportError:
        raise UsageError("exporting to .parquet needs pyarrow: pip install 'bindsearch[parquet]'") from None
    return pyarrow
