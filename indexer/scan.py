"""Walking the folders to index: which files are there, of what modality, with what size and mtime.

Only names and stat results are looked at (no file is opened), so that a
re-index of an unchanged folder costs one stat per file.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from typing import NamedTuple

from bindsearch.modality import DEFAULT_NAMING, Modality, Naming


class FoundFile(NamedTuple):
    """A file the walk found. ``error`` is set when it cannot be read at all (size and mtime are then 0).

    A named tuple, not a dataclass: a walk makes one per file, and this is the cheapest immutable record.
    """

    path: str
    modality: Modality
    size: int
    mtime_ns: int
    error: str | None = None


@dataclass
class ScanResult:
    files: list[FoundFile] = field(default_factory=list)
    # Folders the walk could not enter: what the library holds under them is kept, not swept.
    unreadable_dirs: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0  # files that are not media of a known kind
    soundtracks: bool = False  # list each video a second time, as audio

    def add(self, found: FoundFile) -> None:
        self.files.append(found)
        if self.soundtracks and found.modality is Modality.VIDEO:
            self.files.append(FoundFile(found.path, Modality.AUDIO, found.size, found.mtime_ns, found.error))


def scan(
    roots: list[str],
    forced: Modality | None = None,
    exclude: list[str] | None = None,
    soundtracks: bool = False,
    naming: Naming = DEFAULT_NAMING,
) -> ScanResult:
    """Find the media files under ``roots`` (absolute paths of files or folders).

    Hidden files and folders (a name starting with '.') are skipped unless named
    as a root; folders in ``exclude`` (the library's own) are skipped; symbolic
    links are followed, each real folder visited once, so link loops end.
    With ``soundtracks``, every video is listed a second time as audio (its soundtrack).
    ``naming``: the space's, which tells the modalities it adds by their folders and inner extensions.
    """
    result = ScanResult(soundtracks=soundtracks and forced is None)
    excluded = {_dir_key(p) for p in (exclude or []) if os.path.isdir(p)}
    visited: set[tuple[int, int]] = set()
    for root in roots:
        if os.path.isdir(root):
            _walk(root, forced, excluded, visited, result, naming)
        else:
            _add_file(root, forced, result, named=True, naming=naming)
    return result


def _walk(top: str, forced: Modality | None, excluded: set, visited: set, result: ScanResult,
          naming: Naming) -> None:
    # The per-file work is kept small (this loop runs once per file of the library):
    # the DirEntry's own stat, a modality looked up once per folder and kind of name,
    # and a named tuple per file found. The caller pauses cyclic GC over the walk.
    add = result.add
    s_isreg = stat.S_ISREG
    modality_of = naming.modality_of
    named = naming.names
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # (deleted while we walked: nothing to record)
                result.unreadable_dirs.append((folder, _reason(exc)))
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited or key in excluded:
            continue
        visited.add(key)
        try:
            with os.scandir(folder) as entries:
                children = sorted(entries, key=_entry_name)
        except OSError as exc:
            result.unreadable_dirs.append((folder, _reason(exc)))
            continue
        subfolders = []
        kinds: dict = {}  # name shape -> modality, for this folder
        for entry in children:
            name = entry.name
            if name[0] == ".":
                continue
            try:
                is_dir = entry.is_dir()  # follows symbolic links
            except OSError:
                is_dir = False
            if is_dir:
                subfolders.append(entry.path)
                continue
            path = entry.path
            if forced is not None:
                modality = forced
            else:
                shape = _name_shape(name, named)
                try:
                    modality = kinds[shape]
                except KeyError:
                    modality = kinds[shape] = modality_of(path)
                if modality is None:
                    result.ignored += 1
                    continue
            try:
                st = entry.stat()  # follows symbolic links, like os.stat
            except OSError as exc:
                _stat_failed(path, modality, exc, result, named=False)
                continue
            if not s_isreg(st.st_mode):
                add(FoundFile(path, modality, 0, 0, "not a regular file"))
                continue
            mtime_ns = st.st_mtime_ns
            if not _MIN_MTIME_NS <= mtime_ns <= _MAX_MTIME_NS:
                add(FoundFile(path, modality, 0, 0, _mtime_out_of_range(mtime_ns)))
                continue
            add(FoundFile(path, modality, st.st_size, mtime_ns))
        stack.extend(reversed(subfolders))


def _entry_name(entry: os.DirEntry) -> str:
    return entry.name


def _name_shape(name: str, named: frozenset[str]) -> tuple[str, str] | None:
    """What ``Naming.modality_of`` reads of a file name within one folder: its extension, and
    its inner extension when that names a modality of the convention (``named``: "scan.depth.png").

    Two names of one folder with the same shape have the same modality, so it is
    looked up once per shape (tests/test_noop_speed.py checks this against
    ``modality_from_path`` on awkward names). For names not starting with a dot
    (hidden names are skipped), ``rpartition`` splits as ``os.path.splitext`` does.
    """
    head, dot, ext = name.lower().rpartition(".")
    if not dot:
        return None  # no extension
    inner = head.rpartition(".")[2] if "." in head else ""
    return ext, (inner if inner in named else "")


def _add_file(path: str, forced: Modality | None, result: ScanResult, named: bool,
              naming: Naming = DEFAULT_NAMING) -> None:
    modality = forced or naming.modality_of(path)
    if modality is None:
        result.ignored += 1
        return
    try:
        st = os.stat(path)
    except OSError as exc:
        _stat_failed(path, modality, exc, result, named)
        return
    if not stat.S_ISREG(st.st_mode):
        result.add(FoundFile(path, modality, 0, 0, "not a regular file"))
        return
    if not _MIN_MTIME_NS <= st.st_mtime_ns <= _MAX_MTIME_NS:
        result.add(FoundFile(path, modality, 0, 0, _mtime_out_of_range(st.st_mtime_ns)))
        return
    result.add(FoundFile(path, modality, st.st_size, st.st_mtime_ns))


# The library records mtimes as nanoseconds in a signed 64-bit integer (SQLite's), which spans the
# years 1677 to 2262. A file dated outside them (a clock gone wrong, ``touch -d 2300-01-01``) fails
# alone in the scan: stored, it would fail the whole batch it was committed with, on every run.
_MAX_MTIME_NS = 2**63 - 1
_MIN_MTIME_NS = -(2**63)


def _mtime_out_of_range(mtime_ns: int) -> str:
    when = "after 2262" if mtime_ns > 0 else "before 1677"
    return f"its modification time lies {when}, which cannot be recorded; give it a real date (touch FILE)"


def _stat_failed(path: str, modality: Modality, exc: OSError, result: ScanResult, named: bool) -> None:
    if exc.errno == errno.ENOENT and os.path.islink(path):
        reason = "broken symbolic link (its target does not exist)"
    elif exc.errno == errno.ENOENT and not named:
        return  # deleted while we walked: nothing to index, and the sweep removes it
    else:
        reason = _reason(exc)
    result.add(FoundFile(path, modality, 0, 0, reason))


def _dir_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EACCES:
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "no such file or folder"
    if exc.errno == errno.ENAMETOOLONG:
        return "its path is longer than the system allows (PATH_MAX)"
    return exc.strerror or str(exc)
