"""Importing vectors computed elsewhere into a library, a chunk of rows per transaction."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..errors import MediaError, SpaceMismatchError, UsageError
from ..modality import Modality
from ..windows import WINDOWED
from .files_on_disk import stat_paths
from .read_ahead import read_ahead
from .report import ImportReport
from .rows import absolute_paths, last_of_each, parse_modalities, unit_rows
from .source import FileHeader, RowChunk, open_source

if TYPE_CHECKING:
    from ..library import LibraryStore as Library
    from ..library import LibraryWriter

CHUNK_ROWS = 10_000
_KEPT = "every chunk of rows imported before is kept, the one being written is not"


def import_file(library: Library, file: str | os.PathLike[str], *, hash_files: bool = False,
                chunk_rows: int = CHUNK_ROWS, progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Add the vectors of a ``.npz`` or ``.parquet`` file (as ``export`` writes them) to ``library``.

    A file that names its space must be of the library's (same fingerprint, else
    SpaceMismatchError); one that does not is taken on its vectors' dimension alone (UsageError
    when it differs). Nothing is imported in either case. Rows are then checked one by one: a row
    without a usable path, modality (one the library's space embeds) or vector (finite, not all
    zero, of the right length) is skipped and reported with its row number. Vectors are scaled to
    unit length; relative paths are taken from the current folder. A (path, modality) the library
    holds already gets the imported vector, and the row's tags are added to its own. Of rows with the
    same path and modality the later one wins: an earlier one in the same chunk is skipped (and
    reported), one in an earlier chunk is updated.

    A path whose file exists gets that file's size and mtime, so that ``index`` of its folder
    finds it unchanged; with ``hash_files`` its content hash too (every file is read), so that
    ``index`` also knows it moved or copied. A path without a file is kept until ``remove``.
    Imported audio and video have no time windows.

    Each ``chunk_rows`` rows are one transaction; ``progress(rows_done, rows_total)`` is called
    after each. Ctrl-C keeps the chunks done and returns the report with ``interrupted`` set.
    """
    if chunk_rows < 1:
        raise UsageError("the rows per chunk must be at least 1")
    started = time.monotonic()
    source = open_source(file)
    try:
        header = source.header
        check_space(header, str(library.path), library.space_name, library.fingerprint, library.dim)
        report = ImportReport(os.path.abspath(header.path), header.format, header.space, header.fingerprint)
        with library.writer(kept=_KEPT) as writer:
            try:
                for chunk in read_ahead(source.chunks(chunk_rows)):
                    _import_chunk(library, writer, chunk, report, hash_files)
                    if progress is not None:
                        progress(report.rows, header.rows)
            except KeyboardInterrupt:
                report.interrupted = True
    finally:
        source.close()
    report.modalities = dict(sorted(report.modalities.items()))
    report.seconds = time.monotonic() - started
    return report


def read_header(file: str | os.PathLike[str]) -> FileHeader:
    """What a file to import says of itself (format, rows, dimension, space), its rows unread."""
    source = open_source(file)
    try:
        return source.header
    finally:
        source.close()


def check_space(header: FileHeader, library: str, space: str, fingerprint: str, dim: int) -> None:
    """Refuse a file whose vectors cannot go in a library of this space: another fingerprint where the file
    names one (SpaceMismatchError), else another dimension (UsageError)."""
    if header.fingerprint is not None and header.fingerprint != fingerprint:
        raise SpaceMismatchError(
            f"{header.path} holds vectors of space {header.space or 'unnamed'} (fingerprint {header.fingerprint}), "
            f"library {library} those of space {space} (fingerprint {fingerprint}): vectors of different models "
            "cannot be searched together; import the file into a library of its own space"
        )
    if header.rows and header.dim == 0:
        raise UsageError(f"cannot import {header.path}: none of its {header.rows} rows has a vector")
    if header.rows and header.dim != dim:
        raise UsageError(f"cannot import {header.path}: its vectors have {header.dim} values, those of library "
                         f"{library} (space {space}) {dim}; nothing was imported")


def _import_chunk(library: Library, writer: LibraryWriter, chunk: RowChunk, report: ImportReport,
                  hash_files: bool) -> None:
    space = library.space
    paths, path_problems = absolute_paths(chunk.paths)
    modalities, modality_problems = parse_modalities(chunk.modalities, space.modalities, space.name)
    vectors, vector_problems = unit_rows(chunk.vectors)
    # One reason per row: what is wrong with its path before its modality, before its vector.
    problems = {**vector_problems, **chunk.problems, **modality_problems, **path_problems}
    good = [i for i in range(len(paths)) if i not in problems]
    good, repeated = last_of_each([(paths[i], modalities[i]) for i in range(len(paths))], good)
    for i, later in repeated.items():
        problems[i] = f"row {chunk.first + later} has the same path and modality, and is imported instead"
    disk = stat_paths([paths[i] for i in good])
    hashes: list[str | None] = [None] * len(good)
    for k, i in enumerate(good):
        if k in disk.problems:
            problems[i] = disk.problems[k]
        elif hash_files and disk.present[k]:
            hashes[k] = _hash_or_none(paths[i])
    for i in sorted(problems):
        report.refuse(chunk.first + i, problems[i], paths[i] or chunk.paths[i] or None)
    by_modality: dict[Modality, list[int]] = {}
    for k, i in enumerate(good):
        if k not in disk.problems:
            by_modality.setdefault(modalities[i], []).append(k)  # type: ignore[arg-type]
    for modality, picked in by_modality.items():
        rows = [good[k] for k in picked]
        added, updated = writer.put_many(
            modality, [paths[i] for i in rows], vectors[np.array(rows, dtype=np.int64)],
            [disk.sizes[k] for k in picked], [disk.mtimes_ns[k] for k in picked],
            content_hashes=[hashes[k] for k in picked], tags=[chunk.tags[i] for i in rows],
            # Cut into no windows: an index run leaves the item as it is instead of embedding it again.
            window_count=0 if modality in WINDOWED else None,
        )
        report.added += added
        report.updated += updated
        report.imported += added + updated
        report.modalities[modality.value] = report.modalities.get(modality.value, 0) + added + updated
        report.without_file += sum(1 for k in picked if not disk.present[k])
    report.rows += len(paths)


def _hash_or_none(path: str) -> str | None:
    from ..indexer.hashing import content_hash

    try:
        return content_hash(path)
    except MediaError:  # unreadable: imported without a hash, as if it were not asked
        return None
