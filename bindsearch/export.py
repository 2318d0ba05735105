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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .errors import UsageError
from .filters import Filters
from .modality import Modality

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


def collect_rows(library: Library, modalities: Sequence[Modality | str] | None, paths: Sequence[str]) -> ExportRows:
    """The embedded items to export, by modality then item id, with their stored vectors and tags."""
    wanted = ([Modality.parse(m) for m in modalities] if modalities else library.modalities_with_vectors())
    filters = Filters(paths=tuple(paths))
    out_paths: list[str] = []
    out_modalities: list[str] = []
    parts: list[np.ndarray] = []
    ids_all: list[int] = []
    for modality in dict.fromkeys(wanted):
        selected = library.select(modality, filters)
        ids, vectors = library.stored_vectors(modality)
        keep = np.isin(ids, selected)
        ids, vectors = ids[keep], vectors[keep]
        found = library.items(ids.tolist())
        out_paths += [found[int(i)][0] for i in ids]
        out_modalities += [modality.value] * len(ids)
        parts.append(vectors)
        ids_all += ids.tolist()
    tags = library.tags_of(ids_all)
    vectors = np.concatenate(parts) if parts else np.zeros((0, library.dim), np.float32)
    return ExportRows(out_paths, out_modalities, vectors.astype(np.float32, copy=False),
                      [list(tags.get(i, ())) for i in ids_all])


def write_npz(file: str, rows: ExportRows, space: SpaceLabel) -> None:
    """The rows as a ``.npz`` of plain arrays (loadable with ``allow_pickle=False``)."""
    with open(file, "wb") as f:
        np.savez(
            f,
            path=np.array(rows.paths, dtype=str),
            modality=np.array(rows.modalities, dtype=str),
            vector=rows.vectors,
            tags=np.array([json.dumps(t, ensure_ascii=False) for t in rows.tags], dtype=str),
            space=np.array(space.name),
            fingerprint=np.array(space.fingerprint),
            space_spec=np.array(space.spec),
        )
        f.flush()
        os.fsync(f.fileno())


def write_parquet(file: str, rows: ExportRows, space: SpaceLabel) -> None:
    """The rows as a Parquet table; ``vector`` a fixed-size list column."""
    pa = _pyarrow()
    import pyarrow.parquet as pq

    dim = rows.vectors.shape[1]
    try:
        path_column = pa.array(rows.paths, type=pa.string())
    except (UnicodeEncodeError, pa.ArrowInvalid):
        bad = next(p for p in rows.paths if not _utf8(p))
        raise UsageError(f"cannot export {bad!r} to parquet: its name is not UTF-8 text (export to .npz)") from None
    table = pa.table(
        {
            "path": path_column,
            "modality": pa.array(rows.modalities, type=pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(rows.vectors.reshape(-1), type=pa.float32()), dim),
            "tags": pa.array(rows.tags, type=pa.list_(pa.string())),
        }
    ).replace_schema_metadata({"bindsearch.space": space.name, "bindsearch.fingerprint": space.fingerprint,
                               "bindsearch.space_spec": space.spec})
    pq.write_table(table, file)


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
