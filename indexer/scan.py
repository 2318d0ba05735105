"""Walking the folders to index: which files are there, of what modality, with what size and mtime.

Only names and stat results are looked at (no file is opened), so that a
re-index of an unchanged folder costs one stat per file.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

from bindsearch.modality import Modality, modality_from_path


@dataclass(frozen=True)
class FoundFile:
    """A file the walk found. ``error`` is set when it cannot be read at all (size and mtime are then 0)."""

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
) -> ScanResult:
    """Find the media files under ``roots`` (absolute paths of files or folders).

    Hidden files and folders (a name starting with '.') are skipped unless named
    as a root; folders in ``exclude`` (the library's own) are skipped; symbolic
    links are followed, each real folder visited once, so link loops end.
    With ``soundtracks``, every video is listed a second time as audio (its soundtrack).
    """
    result = ScanResult(soundtracks=soundtracks and forced is None)
    excluded = {_dir_key(p) for p in (exclude or []) if os.path.isdir(p)}
    visited: set[tuple[int, int]] = set()
    for root in roots:
        if os.path.isdir(root):
            _walk(root, forced, excluded, visited, result)
        else:
            _add_file(root, forced, result, named=True)
    return result


def _walk(top: str, forced: Modality | None, excluded: set, visited: set, result: ScanResult) -> None:
    stack = [top]
    while stack:
        folder = stack.pop()
        key = _dir_key(folder)
        if key is None or key in visited or key in excluded:
            continue
        visited.add(key)
        try:
            with os.scandir(folder) as entries:
                children = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            result.unreadable_dirs.append((folder, _reason(exc)))
            continue
        subfolders = []
        for entry in children:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()  # follows symbolic links
            except OSError:
                is_dir = False
            if is_dir:
                subfolders.append(entry.path)
            else:
                _add_file(entry.path, forced, result, named=False)
        stack.extend(reversed(subfolders))


def _add_file(path: str, forced: Modality | None, result: ScanResult, named: bool) -> None:
    modality = forced or modality_from_path(path)
    if modality is None:
        result.ignored += 1
        return
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(path):
            reason = "broken symbolic link (its target does not exist)"
        elif exc.errno == errno.ENOENT and not named:
            return  # deleted while we walked: nothing to index, and the sweep removes it
        else:
            reason = _reason(exc)
        result.add(FoundFile(path, modality, 0, 0, reason))
        return
    if not stat.S_ISREG(st.st_mode):
        result.add(FoundFile(path, modality, 0, 0, "not a regular file"))
        return
    result.add(FoundFile(path, modality, st.st_size, st.st_mtime_ns))


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
    return exc.strerror or str(exc)
