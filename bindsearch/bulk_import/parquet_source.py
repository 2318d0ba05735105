"""Reading a Parquet file for import, in record batches (pyarrow, the ``parquet`` extra).

Columns ``path`` and ``modality`` (strings), ``vector`` (a list or fixed-size list of floats) and
optionally ``tags`` (a list of strings); the space, where the file carries it, in the schema's
metadata as ``export`` writes it. Only the batch being imported is in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import UsageError
from .source import COLUMN_NAMES, FileHeader, RowChunk, parse_tags

_SPACE_KEY = b"bindsearch.space"
_FINGERPRINT_KEY = b"bindsearch.fingerprint"
_SPACE_SPEC_KEY = b"bindsearch.space_spec"


def pyarrow_module() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise UsageError("importing a .parquet file needs pyarrow: pip install 'bindsearch[parquet]'") from None
    return pyarrow


class ParquetSource:
    """An open Parquet file: its header from the schema and footer, its rows a batch at a time."""

    def __init__(self, file: str) -> None:
        pa = pyarrow_module()
        import pyarrow.parquet as pq

        self.file = file
        self._errors = (pa.ArrowException, OSError)
        try:
            self.parquet = pq.ParquetFile(file)
            schema = self.parquet.schema_arrow
        except self._errors as exc:
            raise UsageError(f"cannot import {file}: not a readable Parquet file ({_first_line(exc)})") from None
        self.columns: dict[str, str] = {}
        for column, choices in COLUMN_NAMES.items():
            found = next((c for c in choices if c in schema.names), None)
            if found is not None:
                self.columns[column] = found
            elif column != "tags":
                raise UsageError(f"cannot import {file}: it has no '{column}' column "
                                 f"(its columns: {', '.join(schema.names) or 'none'})")
        vector_type = schema.field(self.columns["vector"]).type
        if not (pa.types.is_list(vector_type) or pa.types.is_large_list(vector_type)
                or pa.types.is_fixed_size_list(vector_type)) or not pa.types.is_floating(vector_type.value_type):
            raise UsageError(f"cannot import {file}: its '{self.columns['vector']}' column is {vector_type}, "
                             "not a list of floats")
        self.fixed = pa.types.is_fixed_size_list(vector_type)
        for column in ("path", "modality"):
            kind = schema.field(self.columns[column]).type
            if pa.types.is_dictionary(kind):
                kind = kind.value_type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                raise UsageError(f"cannot import {file}: its '{self.columns[column]}' column is {kind}, not text")
        if "tags" in self.columns:
            kind = schema.field(self.columns["tags"]).type
            listed = (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and (
                pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type))
            if not (listed or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                raise UsageError(f"cannot import {file}: its 'tags' column is {kind}, not a list of strings")
        meta = schema.metadata or {}
        self.header = FileHeader(
            file, "parquet", self.parquet.metadata.num_rows,
            vector_type.list_size if self.fixed else self._first_length(),
            _decoded(meta.get(_SPACE_KEY)), _decoded(meta.get(_FINGERPRINT_KEY)), _decoded(meta.get(_SPACE_SPEC_KEY)),
        )

    def _first_length(self) -> int:
        """The length of the file's first vector (0 when it has none): the dimension its vectors claim."""
        try:
            for batch in self.parquet.iter_batches(batch_size=1024, columns=[self.columns["vector"]]):
                column = batch.column(0)
                for i in range(len(column)):
                    if column[i].is_valid:
                        return len(column[i])
        except self._errors as exc:
            raise UsageError(f"cannot import {self.file}: damaged ({_first_line(exc)})") from None
        return 0

    def chunks(self, rows: int) -> Iterator[RowChunk]:
        names = list(self.columns.values())
        first = 0
        batches = self.parquet.iter_batches(batch_size=rows, columns=names)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except self._errors as exc:
                raise UsageError(f"cannot import {self.file}: damaged near row {first} ({_first_line(exc)})") from None
            yield self._chunk(batch, first)
            first += batch.num_rows

    def _chunk(self, batch: Any, first: int) -> RowChunk:
        column = {name: batch.column(batch.schema.get_field_index(self.columns[name])) for name in self.columns}
        vectors, problems = list_vectors(column["vector"], self.header.dim, self.fixed)
        n = batch.num_rows
        chunk = RowChunk(first, column["path"].to_pylist(), column["modality"].to_pylist(), vectors,
                         [[] for _ in range(n)], problems)
        if "tags" in column:
            _fill_tags(chunk, column["tags"])
        return chunk

    def close(self) -> None:
        self.parquet.close()


def list_vectors(column: Any, dim: int, fixed: bool) -> tuple[np.ndarray, dict[int, str]]:
    """An Arrow list column as an (n, dim) float32 array, and why each row that is not a vector of ``dim``
    values is not (a null, or another length); those rows are zero."""
    n = len(column)
    problems: dict[int, str] = {}
    valid = ~column.is_null().to_numpy(zero_copy_only=False)
    values = column.values.to_numpy(zero_copy_only=False)  # null floats read as NaN: refused later
    if fixed:
        size = column.type.list_size
        start = column.offset * size
        out = values[start : start + n * size].reshape(n, size)
    else:
        offsets = column.offsets.to_numpy()
        lengths = np.diff(offsets)
        fits = valid & (lengths == dim)
        if fits.all() and (offsets == offsets[0] + dim * np.arange(n + 1)).all():
            out = values[offsets[0] : offsets[0] + n * dim].reshape(n, dim)  # every row in place: no gather
        else:
            out = np.zeros((n, dim), dtype=values.dtype)
            if fits.any():
                out[fits] = values[offsets[:-1][fits, None] + np.arange(dim)]
        for i in np.flatnonzero(valid & ~fits):
            problems[int(i)] = f"its vector has {int(lengths[i])} values, not {dim}"
    for i in np.flatnonzero(~valid):
        problems[int(i)] = "it has no vector"
    out = out.astype(np.float32)
    out[~valid] = 0
    return out, problems


def _fill_tags(chunk: RowChunk, column: Any) -> None:
    import pyarrow as pa

    is_text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    for i, row in enumerate(column.to_pylist()):
        if row is None:
            continue
        tags = parse_tags(row) if is_text else row  # a text column: JSON lists, as in a .npz
        if tags is None or not all(isinstance(t, str) or t is None for t in tags):
            chunk.problems.setdefault(i, "its tags are not a list of strings")
            continue
        chunk.tags[i] = [t for t in (v.strip() for v in tags if v is not None) if t]


def _decoded(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace") if value else None  # (an empty one names nothing either)


def _first_line(exc: BaseException) -> str:
    from ..errors import first_line

    return first_line(exc)
