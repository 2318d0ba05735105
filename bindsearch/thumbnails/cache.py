"""Thumbnails kept on disk, so that a page of results costs a file read per picture, not a decode."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from ..errors import MediaError
from ..loaders.common import os_reason
from ..modality import Modality
from .make import DEFAULT_SIZE, Thumbnail, make_thumbnail, thumbnail_extension, thumbnail_media_type

# Part of every key: a change to how pictures are drawn makes the old ones misses, not stale hits.
DRAWING_VERSION = 1
_HASH_HEX = 8  # hex digits of each half of a name's hash


class ThumbnailCache:
    """Thumbnails under ``folder``: ``<item_id % 256 as 2 hex digits>/<item_id>-<hash>.<ext>``.

    The hash covers the item id, the source file's size and mtime_ns (so an
    edited file gets a new picture), ``at`` rounded to 0.1 s, the size and the
    modality. Its first half depends only on the source file's state, so the
    pictures of an older version of the file can be told apart and removed.
    Pictures are written atomically (a temporary file in the same folder,
    then ``os.replace``): a reader in another thread or process sees the whole
    picture or none. Safe to share between threads.
    """

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def get(
        self, item_id: int, path: str, modality: Modality, at: float | None, size: int = DEFAULT_SIZE,
        kind: str | None = None,
    ) -> Thumbnail:
        """The cached picture when there is one, else a new one (stored when the folder can be written).

        Raises MediaError when the source file is gone or cannot be read.
        """
        modality = Modality.parse(modality)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise MediaError(path, "the file is gone (deleted or moved since it was indexed)") from None
        except OSError as exc:
            raise MediaError(path, os_reason(exc)) from None
        target = self.path_for(item_id, st, modality, at, size)
        try:
            data = target.read_bytes()
            if data:  # an empty file is what a crash between create and write can leave: remake it
                return Thumbnail(data, thumbnail_media_type())
        except OSError:
            pass  # missing (the usual miss) or unreadable: make it anew
        thumbnail = make_thumbnail(path, modality, at, size, kind)
        self._store(target, thumbnail.data, item_id)
        return thumbnail

    def path_for(
        self, item_id: int, st: os.stat_result, modality: Modality, at: float | None, size: int = DEFAULT_SIZE
    ) -> Path:
        """Where the picture of this item, source file state, time and size lives (whether or not it exists)."""
        version = _short_hash(f"{DRAWING_VERSION}:{item_id}:{st.st_size}:{st.st_mtime_ns}")
        at_key = "none" if at is None else f"{round(at * 10)}"  # tenths of a second
        variant = _short_hash(f"{version}:{Modality.parse(modality).value}:{at_key}:{size}")
        name = f"{item_id}-{version}{variant}.{thumbnail_extension()}"
        return self.folder / f"{item_id % 256:02x}" / name

    def _store(self, target: Path, data: bytes, item_id: int) -> None:
        """Write ``data`` to ``target`` atomically; a cache that cannot be written is just not written."""
        temp = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o644)  # mkstemp's 0600 would hide the cache from the library's other users
                f.write(data)
            os.replace(temp, target)
            temp = None
        except OSError:
            return  # read-only library, full disk, another user's folder: serve the picture uncached
        finally:
            if temp is not None:
                try:
                    os.unlink(temp)
                except OSError:
                    pass
        self._remove_older_versions(target, item_id)

    @staticmethod
    def _remove_older_versions(target: Path, item_id: int) -> None:
        """Delete this item's pictures made from an earlier state of its file (same item, other first half)."""
        item_prefix = f"{item_id}-"
        current = target.name[: len(item_prefix) + _HASH_HEX]
        try:
            with os.scandir(target.parent) as entries:
                stale = [e.path for e in entries if e.name.startswith(item_prefix) and not e.name.startswith(current)]
        except OSError:
            return
        for name in stale:
            try:
                os.unlink(name)
            except OSError:
                pass


def _short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=_HASH_HEX // 2).hexdigest()
