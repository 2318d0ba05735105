"""A note of the file the indexing process itself is reading, so that a decoder that kills it
costs one run, not every run.

A worker that dies takes only its culprit down (see ``isolation``), but some files are read in
the main process: a run of a handful of files, ``--workers 0``, and the files a GPU run's main
process reads while its workers are busy. A C decoder's crash there (or the out-of-memory killer)
ends the run with no chance to record anything. So before each such read the file is named in
``reading`` in the library folder, and the note is cleared after. A death leaves it behind (the
write is in the page cache, which outlives the process), and the next run reads that file, a
suspect, in a process of its own: if it takes that process down it fails with the reason, as a
worker's culprit does; if not (the run was killed from outside: ``kill -9``), it is indexed.

Only the holder of the writer lock reads files for a library, so one note per library is enough.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bindsearch.library import LibraryStore, LibraryWriter
from bindsearch.library.schema import UNKNOWN_DURATION
from bindsearch.modality import Modality

log = logging.getLogger(__name__)

MARKER_FILE = "reading"

@dataclass(frozen=True)
class LeftOver:
    """The file a run was reading when its process died, with the size and mtime it had then."""

    path: str
    modality: Modality
    size: int
    mtime_ns: int
    header_only: bool = False  # only its length was being read, for an item already embedded


class ReadMarker:
    """The ``reading`` note of one library folder. Writing it costs one pwrite and one ftruncate per file."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, MARKER_FILE)
        self._fd: int | None = None

    def leftover(self) -> LeftOver | None:
        """The file named by a note a dead run left behind, or None (no note, an empty one, or unreadable)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("ignoring the note of a file being read, %s: %s", self.path, exc)
            return None
        if not text.strip():
            return None
        try:
            data = json.loads(text)
            return LeftOver(str(data["path"]), Modality(data["modality"]), int(data["size"]), int(data["mtime_ns"]),
                            bool(data.get("header_only", False)))
        except (ValueError, KeyError, TypeError) as exc:  # a torn write: nothing to go on
            log.warning("ignoring a damaged note of a file being read, %s: %s", self.path, exc)
            return None

    def clear(self) -> None:
        """Forget a leftover note (once its file is recorded as failed)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    @contextmanager
    def reading(self, path: str, modality: Modality, *, header_only: bool = False) -> Iterator[None]:
        """Name ``path`` (and its size and mtime now) in the note while the body reads it; an exception
        clears it as well as a return."""
        fd = self._open()
        if fd is None:
            yield
            return
        try:
            st = os.stat(path)
            size, mtime_ns = st.st_size, st.st_mtime_ns
        except OSError:  # (gone: the read will say so; a note of it would never match the file again)
            size, mtime_ns = -1, -1
        record = json.dumps({"path": path, "modality": modality.value, "size": size, "mtime_ns": mtime_ns,
                             "header_only": header_only})
        data = record.encode("ascii") + b"\n"  # (json escapes every other character)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        except OSError:  # (a full disk, say): the read goes on without the note, as it did before notes
            pass
        try:
            yield
        finally:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass

    def close(self) -> None:
        """Close the note and remove it: a run that ends (even by an exception) left nothing half-read."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self.clear()

    def _open(self) -> int | None:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                log.debug("no note of files being read at %s: %s", self.path, exc)
                return None
        return self._fd


def take_suspect(marker: ReadMarker, library: LibraryStore, writer: LibraryWriter) -> str | None:
    """The path a dead run was reading, to be read in a process of its own (None: no such note); the
    note is cleared.

    One whose length only was being read, for an item already embedded, is not read again: it keeps
    its vector and gets an unknown length at once, as a file whose headers tell none does.
    """
    left = marker.leftover()
    marker.clear()
    if left is None or left.size < 0:
        return None
    log.info("%s: the last run died while reading it; it is read in a process of its own", left.path)
    if not left.header_only:
        return left.path
    stored = next((item for item in library.items_under([left.path])
                   if item.path == left.path and item.modality == left.modality), None)
    if stored is not None:
        writer.set_duration(stored.id, UNKNOWN_DURATION)
        writer.commit()
    return None
