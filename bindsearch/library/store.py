"""A library: one folder with the SQLite metadata, one vector file and one index per modality, bound to a
space.

``LibraryStore`` ties the parts together: the item store (``item_store``: items, windows and tags in
SQLite, the source of truth), the vector files (``vector_stores``: every vector once, at full precision),
the index manager (``index_manager``: which index answers for each modality), and the writer
(``writer``: batches committed atomically under the writer lock). The operations that take a library
(indexing, searching, labelling) live above it, in ``bindsearch.api``.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import DatabaseError, OperationalError

from ..errors import BindsearchError, DiskFullError, SpaceMismatchError, VectorFileError
from ..modality import BUILTIN_MODALITIES, Modality
from ..spaces import Space
from ..spaces.registry import space_from_spec
from ..windows import WINDOWED, WindowSettings
from .database import database_bytes, is_sqlite, shown_url, sql_reason
from .disk_space import disk_full_message, disk_is_full
from .integrity import damaged, refuse_if_damaged
from .item_store import ItemStore
from .lock import WriterLock
from .opening import open_library
from .read_only import refuse
from .records import INDEX_DIR, LOCK_FILE, VECTOR_DIR, IndexInfo, LibraryInfo, OptimizeReport, index_keys
from .schema import Item, Meta, Window, set_meta
from .vector_stores import VectorStores
from .writer import LibraryWriter, _bump_generation

if TYPE_CHECKING:
    from ..ann.base import VectorIndex
    from .index_manager import IndexManager
    from .remove import RemovedItem
    from .tags import TaggedItem

log = logging.getLogger("bindsearch")

S = TypeVar("S", bound="LibraryStore")


class _NoLock:
    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass


class LibraryStore(ItemStore):
    """A searchable collection of embedded media; open it with ``open``.

    SQLite (``library.sqlite``) is the source of truth: one row per item,
    pointing at its vector's row in ``vectors/<modality>.f32``. Each
    modality's index is built from those vectors: exact ones in memory when
    first used, approximate ones saved as ``index/<modality>.ivf``; one that
    is missing or unusable is built again on first use. The time windows of
    long audio and video have vector files and indexes of their own
    (``<modality>.windows``), kept the same way.
    """

    def __init__(self, path: Path, engine: Engine, meta: dict[str, str], space: Space | None,
                 read_only: str | None = None, location: Path | None = None) -> None:
        self.path = path  # the folder of the vector files, indexes and writer's lock
        # What names the library, to open it again: its folder, or the library file naming its database.
        self.location = location or path
        self.metadata_url: str | None = None  # the database URL a library file names (None: the folder's SQLite)
        self._engine = engine
        self._meta = meta
        self._space = space
        # Why this process cannot write the library, or None: searches work, changes are refused.
        self.read_only = read_only
        self.vectors = VectorStores(path, int(meta["dim"]))

    @cached_property
    def indexes(self) -> IndexManager:
        """The loaded indexes; made on first use, as the engines load FAISS, which a process that reads only
        the records (a no-op index run) never needs."""
        from .index_manager import IndexManager

        return IndexManager(self)

    @classmethod
    def open(
        cls: type[S],
        path: str | os.PathLike[str] | None = None,
        space: str | os.PathLike[str] | dict[str, Any] | Space | None = None,
        *,
        create: bool = False,
    ) -> S:
        """Open the library at ``path`` (default: ``BINDSEARCH_LIBRARY`` or the user data folder).

        An existing library remembers its space: ``space`` may be omitted, and if
        given must be the same space, else SpaceMismatchError. With
        ``create=True`` a missing library is created with ``space`` (default:
        ``BINDSEARCH_SPACE`` or the built-in default space). A library this
        process cannot write is opened read-only (``read_only`` says why): it
        can be searched, and every change raises ReadOnlyLibraryError.
        """
        return open_library(cls, path, space, create=create)

    def close(self) -> None:
        """Release the database connections. The library must not be used afterwards."""
        if "indexes" in self.__dict__:
            self.indexes.loaded.clear()
        self.vectors.close()
        self._engine.dispose()

    def __enter__(self) -> LibraryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def space(self) -> Space:
        """The space the library was built with (weights still load lazily)."""
        if self._space is None:
            # stored=True: the spec was checked when the library was made; a lazily built
            # space imports no model code (torch) until something is embedded.
            self._space = space_from_spec(
                json.loads(self._meta["space_spec"]), origin=f"library {self.path}", stored=True
            )
        return self._space

    @property
    def space_name(self) -> str:
        return self._meta["space_name"]

    @property
    def fingerprint(self) -> str:
        return self._meta["space_fingerprint"]

    @property
    def dim(self) -> int:
        return int(self._meta["dim"])

    @property
    def window_settings(self) -> WindowSettings:
        """How long audio and video are cut into time windows in this library."""
        stored = self._meta.get("windows")
        return WindowSettings.from_dict(json.loads(stored)) if stored else WindowSettings()

    # -- the indexes ----------------------------------------------------------------

    def vector_index(self, modality: Modality, windows: bool = False, exact: bool = False) -> VectorIndex:
        """The index of ``modality`` (of its windows with ``windows``), loaded once; see ``IndexManager``.
        ``exact``: one that answers exactly whatever the engine (slower above the exact limit)."""
        return self.indexes.exact(modality, windows) if exact else self.indexes.get(modality, windows)

    def index_info(self) -> list[IndexInfo]:
        """Per index that holds vectors: its engine, size, last build and expected recall."""
        return self.indexes.info()

    def optimize(self) -> OptimizeReport:
        """Build now the approximate indexes that anything changed since their build, and give back the disk
        space of vector rows no item points at any more (see ``holes``); the indexes after, and the bytes freed."""
        freed = 0
        with self.writer(kept="every index built before is kept"):
            for key in self.indexes.keys_with_vectors():
                self.indexes.builder.maintain(key, final=True, force=True)
            # (an index emptied by removals too: its file holds only unused rows)
            for key in index_keys(self.held_modalities()):
                freed += self._free_unused(key)
        return OptimizeReport(self.index_info(), freed)

    def _free_unused(self, key: tuple[Modality, bool]) -> int:
        try:
            return self.vectors.free_unused(key, self.slot_map(*key).slots)
        except (VectorFileError, OSError) as exc:  # (an unusable file is set aside by the next index run)
            log.warning("library %s: the unused rows of %s were left as they are (%s)", self.path,
                        self.vectors.path(key), getattr(exc, "strerror", None) or exc)
            return 0

    def refresh(self) -> None:
        """Bring the loaded indexes up to what other processes committed since: every search starts with this."""
        if "indexes" in self.__dict__:  # (none loaded yet: nothing can be behind)
            self.indexes.refresh()

    def reference_sample(self, modality: Modality, size: int = 512) -> np.ndarray:
        """Vectors of ``modality`` that calibration measures a query against (items' and windows')."""
        return self.indexes.reference_sample(modality, size)

    def candidate_vectors(self, keys: Sequence[tuple[int, int | None]]) -> np.ndarray:
        """The vectors of search candidates, (item id, window id or None) each."""
        return self.indexes.candidate_vectors(keys)

    def modalities_with_vectors(self) -> list[Modality]:
        """The modalities whose index holds vectors, in the usual order."""
        return self.indexes.modalities_with_vectors()

    # -- changes --------------------------------------------------------------------

    def record_precision(self, modalities: Sequence[Modality], precision: str) -> None:
        """Notes that vectors of ``modalities`` were embedded in ``precision`` (``info`` shows it)."""
        from .precisions import record_precision

        with self._engine.begin() as conn:
            record_precision(conn, [m.value for m in modalities], precision)

    def set_window_settings(self, settings: WindowSettings) -> bool:
        """Cut long audio and video with ``settings`` from now on; True if they changed.

        Call with the writer lock held (inside ``writer()``). Audio and video
        items are marked for reading again; their old windows stay searchable
        until each is cut anew. Settings that turn windows off delete them all.
        """
        if settings == self.window_settings:
            return False
        value = json.dumps(settings.to_dict(), sort_keys=True)
        windowed = Item.modality.in_([m.value for m in WINDOWED])
        with self._engine.begin() as conn:
            set_meta(conn, "windows", value)
            if settings.enabled:
                conn.execute(update(Item).where(windowed).values(window_count=None))
            else:
                conn.execute(delete(Window))
                conn.execute(update(Item).where(windowed).values(window_count=0))
                for modality in WINDOWED:
                    _bump_generation(conn, modality, windows=True)
        self._meta["windows"] = value
        if not settings.enabled:
            for modality in WINDOWED:  # nothing points at their vectors any more
                key = (modality, True)
                self.indexes.forget(key)
                self.vectors.forget(key)
                for old in (self.indexes.builder.index_file(key), str(self.vectors.path(key))):
                    try:
                        os.unlink(old)
                    except OSError:
                        pass
        return True

    def record_roots(self, roots: Sequence[str]) -> None:
        """Remember folders and files asked to be indexed (call with the writer lock held); see ``roots``."""
        from .roots import record_roots

        with self._engine.begin() as conn:
            record_roots(conn, roots)

    def indexed_roots(self) -> list[str]:
        """The folders and files this library was asked to index, as absolute paths."""
        from .roots import indexed_roots

        return indexed_roots(self._engine)

    def may_read(self, path: str) -> bool:
        """Whether a query may name the file at ``path`` (absolute): it lies under an indexed root, or is an
        item's file. A server asks this before it reads a file a client names."""
        from .roots import may_read

        return may_read(self._engine, path)

    def tag(self, paths: Sequence[str | os.PathLike[str]], add: Sequence[str] = (),
            remove: Sequence[str] = ()) -> list[TaggedItem]:
        """Add and remove tags on the items of these files (a folder: every item under it); their tags after.

        UsageError names a path the library holds nothing of.
        """
        from .tags import TaggedItem, change_tags, check_tags, items_at, tags_of

        add, remove = check_tags(add), check_tags(remove)
        if add or remove:
            self._refuse_if_read_only("change tags")
        try:
            with self._engine.begin() as conn:
                found = items_at(conn, [os.fspath(p) for p in paths])
                ids = [i for i, _, _ in found]
                change_tags(conn, ids, add, remove)
                tags = tags_of(conn, ids)
        except (OperationalError, DatabaseError) as exc:
            if disk_is_full(exc, self.path):
                raise DiskFullError(disk_full_message(self.path, "no tag was changed")) from None
            raise
        return [TaggedItem(path, modality, list(tags.get(i, ()))) for i, path, modality in found]

    def remove(self, paths: Sequence[str | os.PathLike[str]]) -> list[RemovedItem]:
        """Take the items of these files (a folder: every item under it) out of the library; the files stay.

        One transaction under the writer lock; UsageError names a path the library holds nothing of
        (and nothing is removed). A later ``index`` of a folder above them adds them again.
        """
        from .remove import remove_items

        with self.writer(kept="nothing was removed") as writer, self._engine.connect() as conn:
            return remove_items(conn, writer, paths)

    def info(self, max_failed: int | None = None) -> LibraryInfo:
        """Counts per modality, failed files and size on disk; LibraryError for a damaged database
        (SQLite's quick check runs first: a second for 100 000 items, where a query takes milliseconds)."""
        self.check_damage()
        try:
            return self._info(max_failed)
        except DatabaseError as exc:
            raise damaged(str(self.path), sql_reason(exc)) from None

    def _info(self, max_failed: int | None) -> LibraryInfo:
        from .precisions import read_precisions
        from .tags import tag_counts

        counts, failed, windows = self.failed_and_counts(max_failed)
        with self._engine.connect() as conn:
            tags = tag_counts(conn)
            precisions = read_precisions(conn)
        size = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        size += database_bytes(self._engine, self.metadata_url)
        return LibraryInfo(
            path=str(self.location),
            metadata=None if self.metadata_url is None else shown_url(self.metadata_url),
            vectors=None if self.metadata_url is None else getattr(self.vectors, "uri", str(self.path)),
            space=self.space_name,
            fingerprint=self.fingerprint,
            dim=self.dim,
            schema_version=int(self._meta["schema_version"]),
            created_at=float(self._meta["created_at"]),
            counts=counts,
            failed=failed,
            size_bytes=size,
            window_settings=self.window_settings.to_dict(),
            windows=windows,
            tags=tags,
            precisions=precisions,
            read_only=self.read_only,
            indexes=self.index_info(),
            modalities=self.modality_kinds(),
        )

    def modality_kinds(self) -> dict[str, str]:
        """Each modality of the space (built-in ones in their usual order, then added ones by name) and its
        input kind. Modalities the library holds but the space no longer names are kept, as their own kind."""
        space = self.space
        names = set(space.modalities) | set(self.held_modalities())
        added = sorted(n for n in names if n not in BUILTIN_MODALITIES)
        ordered = [m for m in BUILTIN_MODALITIES if m in names] + added
        return {str(m): (space.input_kind(m) if m in space.modalities else str(m)) for m in ordered}

    def _refuse_if_read_only(self, action: str) -> None:
        if self.read_only:
            raise refuse(self.path, self.read_only, action)

    def check_damage(self) -> None:
        """LibraryError if SQLite's quick check finds the database damaged (it reads every page). A database
        server keeps its own pages sound."""
        if not is_sqlite(self._engine):
            return
        raw = self._engine.raw_connection()
        try:
            refuse_if_damaged(raw, str(self.path))
        finally:
            raw.close()

    @contextmanager
    def writer(self, kept: str = "every change committed before is kept, the one being written is not"
               ) -> Iterator[LibraryWriter]:
        """Exclusive write access: a LibraryWriter whose batches commit atomically.

        A full disk ends the block with DiskFullError, whose one line says what is ``kept``.

        When the block ends normally, the indexes it changed are built anew where
        they are due it; one not rebuilt (a process killed first) is read with what
        changed since its build added from SQLite.
        Refused (ReadOnlyLibraryError) for a library this process cannot write, and
        (LibraryError) for one whose database SQLite's quick check finds damaged.
        """
        self._refuse_if_read_only("index, remove or change its items")
        shared = getattr(self.vectors, "shared", False)
        # Vectors kept elsewhere (Milvus) may be written by several processes at once: no lock, and what a
        # writer killed after its commit left to make in the vector store is made first.
        lock = _NoLock() if shared else WriterLock(str(self.path / LOCK_FILE), str(self.path))
        lock.acquire()
        try:
            if shared:
                self.vectors.flush()
            self.check_damage()
            self.refresh()  # what was loaded before the lock may be older than what other writers committed
            with self._engine.connect() as conn:
                held = conn.execute(select(Meta.value).where(Meta.key == "space_fingerprint")).scalar()
        except BaseException:
            lock.release()
            raise
        if held != self._meta["space_fingerprint"]:
            lock.release()
            raise SpaceMismatchError(
                f"library {self.path} was switched to another space by another process since it was opened; "
                "run the command again"
            )
        # Left by a process killed while saving an index or compacting a vector file.
        for stale in [] if shared else glob.glob(str(self.path / INDEX_DIR / ".tmp-*")) + glob.glob(
                str(self.path / VECTOR_DIR / ".*.tmp-*")):
            try:
                os.unlink(stale)
            except OSError:
                pass
        writer = LibraryWriter(self)
        try:
            try:
                yield writer
                writer.maintain_indexes(final=True)
            finally:
                self.vectors.close_writers()
                lock.release()
        except Exception as exc:
            # A batch's transaction is all or nothing, and an index not rebuilt is read with what changed since.
            if not isinstance(exc, BindsearchError) and disk_is_full(exc, self.path):
                raise DiskFullError(disk_full_message(self.path, kept)) from None
            raise
