"""A library: one folder with the SQLite metadata and one FAISS index per modality, bound to a space."""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from sqlalchemy import Engine, create_engine, delete, event, func, select, update
from sqlalchemy.exc import DatabaseError, OperationalError

from ..errors import BindsearchError, DiskFullError, LibraryError, LibraryLockedError, SpaceMismatchError, UsageError
from ..modality import Modality
from ..paths import default_library_path
from ..spaces import Space, load_space
from ..spaces.registry import space_from_spec
from ..vectors import from_blobs
from ..windows import WINDOWED, WindowSettings
from .disk_space import disk_full_message, disk_is_full
from .integrity import damaged, refuse_if_damaged
from .lock import WriterLock
from .migrations import migrate
from .read_only import read_only_uris, refuse, why_read_only
from .schema import SCHEMA_VERSION, STATUS_FAILED, STATUS_OK, Base, Item, Meta, Vector, Window
from .selection import under
from .soundness import CHECKED_KEY, check_stored_vectors, index_disagreement
from .vector_index import VectorIndex
from .writer import LibraryWriter, _bump_generation, _generation_key, _index_name

if TYPE_CHECKING:
    from ..bulk_import import ImportReport
    from ..export import ExportReport
    from ..indexer import IndexReport
    from ..search import Filters, Hit, QueryTerm
    from ..search.duplicates import DuplicateGroup
    from .remove import RemovedItem
    from .tags import TaggedItem

log = logging.getLogger("bindsearch")

DB_FILE = "library.sqlite"
INDEX_DIR = "index"
LOCK_FILE = "write.lock"


@dataclass(frozen=True)
class FileError:
    """A file that could not be indexed, and why (one line)."""

    path: str
    reason: str


@dataclass(frozen=True)
class LibraryInfo:
    """What ``bindsearch info`` shows about a library."""

    path: str
    space: str
    fingerprint: str
    dim: int
    schema_version: int
    created_at: float
    counts: dict[str, int]
    failed: list[FileError] = field(default_factory=list)
    size_bytes: int = 0
    # Time windows of long audio and video: how they are cut, and how many each modality has.
    window_settings: dict[str, float] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)
    # How many items carry each tag.
    tags: dict[str, int] = field(default_factory=dict)
    # Why this process cannot change the library (it can still search it), or None.
    read_only: str | None = None


class StoredItem(NamedTuple):
    """An item row as the indexer needs it to decide what changed.

    A named tuple, not a dataclass: a re-index reads one per item of the library.
    """

    id: int
    path: str
    modality: Modality
    size: int
    mtime_ns: int
    content_hash: str | None
    status: str
    window_count: int | None
    duration: float | None
    error: str | None = None  # why a failed item failed


class StoredWindow(NamedTuple):
    """A time window of an item: its id, the item's id, and where it lies in the file (seconds)."""

    id: int
    item_id: int
    start: float
    end: float


class Library:
    """A searchable collection of embedded media; open it with ``Library.open``.

    SQLite (``library.sqlite``) is the source of truth: one row per item and
    its vector. Each modality's FAISS index (``index/<modality>-g<N>.faiss``)
    is a cache of those vectors named after the generation it reflects; one
    that is missing, stale or corrupt is rebuilt from SQLite on first use.
    The time windows of long audio and video have indexes of their own
    (``index/<modality>.windows-g<N>.faiss``), kept the same way.
    """

    def __init__(self, path: Path, engine: Engine, meta: dict[str, str], space: Space | None,
                 read_only: str | None = None) -> None:
        self.path = path
        self._engine = engine
        self._meta = meta
        self._space = space
        # Why this process cannot write the library, or None: searches work, changes are refused.
        self.read_only = read_only
        self._indexes: dict[tuple[Modality, bool], VectorIndex] = {}  # (modality, windows?) -> index
        # Ids left out of the indexes this process loads: unusable vectors of a library it cannot repair.
        self._dropped: dict[tuple[Modality, bool], set[int]] = {}
        self._index_generations: dict[tuple[Modality, bool], int] = {}  # the generation each loaded index is of

    # -- opening ----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        space: str | os.PathLike[str] | dict[str, Any] | Space | None = None,
        *,
        create: bool = False,
    ) -> Library:
        """Open the library at ``path`` (default: ``BINDSEARCH_LIBRARY`` or the user data folder).

        An existing library remembers its space: ``space`` may be omitted, and if
        given must be the same space, else SpaceMismatchError. With
        ``create=True`` a missing library is created with ``space`` (default:
        ``BINDSEARCH_SPACE`` or the built-in default space). A library this
        process cannot write is opened read-only (``read_only`` says why): it
        can be searched, and every change raises ReadOnlyLibraryError.
        """
        folder = Path(path).expanduser() if path is not None else default_library_path()
        folder = folder.absolute()
        db_path = folder / DB_FILE
        if not db_path.exists():
            if not create:
                raise LibraryError(f"no library at {folder} (index some files to create one)")
            return cls._create(folder, load_space(space))
        read_only = why_read_only(folder, db_path)
        engine = _read_only_engine(db_path) if read_only else _engine(db_path)
        try:
            with engine.begin() as conn:
                meta = {row.key: row.value for row in conn.execute(select(Meta.key, Meta.value))}
                found = int(meta.get("schema_version", "0"))
                if found != SCHEMA_VERSION and read_only:
                    raise refuse(folder, read_only, f"upgrade it from schema {found} to {SCHEMA_VERSION}")
                if found != SCHEMA_VERSION:
                    migrate(conn, found, str(folder))
                    conn.execute(update(Meta).where(Meta.key == "schema_version").values(value=str(SCHEMA_VERSION)))
                    meta["schema_version"] = str(SCHEMA_VERSION)
        except (DatabaseError, OperationalError) as exc:
            engine.dispose()
            if disk_is_full(exc, folder):  # SQLite needs room for its journal even to read
                raise DiskFullError(disk_full_message(folder, "nothing was changed")) from None
            raise LibraryError(f"{db_path} is not a readable bindsearch library ({_sql_reason(exc)})") from None
        except LibraryError:
            engine.dispose()
            raise
        if "space_spec" not in meta:
            engine.dispose()
            raise LibraryError(f"{db_path} is not a bindsearch library (it records no space)")
        library = cls(folder, engine, meta, None, read_only)
        if read_only:
            log.warning("library %s is read-only (%s): it can be searched, not changed; "
                        "indexes rebuilt from it are kept in memory only", folder, read_only)
        if space is not None:
            requested = load_space(space)
            # Another number of dimensions tells a different space without the fingerprint, whose
            # checkpoint identity could mean a download.
            other_dim = requested.dim != int(meta["dim"])
            differs = other_dim or requested.fingerprint != meta["space_fingerprint"]
            if differs and library._holds_no_vectors():
                if read_only:
                    engine.dispose()
                    raise refuse(folder, read_only, f"switch it to space {requested.name}")
                # Nothing embedded yet (say a first run could not load its model): nothing to lose.
                # Under the writer lock, so that a run of the first space is not overtaken.
                try:
                    with WriterLock(str(folder / LOCK_FILE), str(folder)):
                        if library._holds_no_vectors():
                            library._rebind(requested)
                except LibraryLockedError:
                    engine.dispose()
                    raise
            elif differs:
                engine.dispose()
                identity = f"{requested.dim} dims" if other_dim else f"fingerprint {requested.fingerprint}"
                raise SpaceMismatchError(
                    f"library {folder} holds vectors of space {meta['space_name']} "
                    f"(fingerprint {meta['space_fingerprint']}), not of {requested.name} "
                    f"({identity}); leave out the space to use the library's own, "
                    "or choose another library"
                )
            library._space = requested
        if meta.get(CHECKED_KEY) != "1":
            check_stored_vectors(library, _bump_generation)
        return library

    @classmethod
    def _create(cls, folder: Path, space: Space) -> Library:
        if folder.exists() and not folder.is_dir():
            raise LibraryError(f"cannot create a library at {folder}: it is a file")
        if (folder / DB_FILE).exists():  # another process created it meanwhile: use it
            return cls.open(folder, space)
        if folder.is_dir() and any(folder.iterdir()):
            raise LibraryError(f"cannot create a library at {folder}: the folder exists and is not a library")
        spec, fingerprint, dim = space.spec, space.fingerprint, space.dim
        # Built in a temporary folder beside the target and renamed into place: a process
        # killed halfway leaves no half-made library, only a hidden folder that is cleared next time.
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            _remove_abandoned_staging(folder)
            staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.creating-{os.getpid()}-", dir=folder.parent))
            (staging / INDEX_DIR).mkdir()
        except OSError as exc:
            raise LibraryError(f"cannot create a library at {folder}: {exc.strerror or exc}") from None
        engine = _engine(staging / DB_FILE)
        meta = {
            "schema_version": str(SCHEMA_VERSION),
            "space_spec": json.dumps(spec, sort_keys=True),
            "space_name": space.name,
            "space_fingerprint": fingerprint,
            "dim": str(dim),
            "created_at": repr(time.time()),
            "windows": json.dumps(WindowSettings().to_dict(), sort_keys=True),
            CHECKED_KEY: "1",  # every vector it will hold is checked before it is stored
        }
        try:
            Base.metadata.create_all(engine)
            with engine.begin() as conn:
                conn.execute(Meta.__table__.insert(), [{"key": k, "value": v} for k, v in meta.items()])
            engine.dispose()
            os.replace(staging, folder)  # an empty target folder is replaced too
        except (OSError, DatabaseError, OperationalError) as exc:
            engine.dispose()
            shutil.rmtree(staging, ignore_errors=True)
            if (folder / DB_FILE).exists():  # another process created it first: use theirs
                return cls.open(folder, space)
            if disk_is_full(exc, folder.parent):
                raise DiskFullError(disk_full_message(folder, "no library was made")) from None
            reason = getattr(exc, "strerror", None) or _sql_reason(exc)
            raise LibraryError(f"cannot create a library at {folder}: {reason}") from None
        return cls(folder, _engine(folder / DB_FILE), meta, space)

    def _holds_no_vectors(self) -> bool:
        with self._engine.connect() as conn:
            return conn.execute(select(Vector.item_id).limit(1)).first() is None

    def _rebind(self, space: Space) -> None:
        values = {
            "space_spec": json.dumps(space.spec, sort_keys=True),
            "space_name": space.name,
            "space_fingerprint": space.fingerprint,
            "dim": str(space.dim),
        }
        with self._engine.begin() as conn:
            conn.execute(delete(Item))
            for key, value in values.items():
                conn.execute(update(Meta).where(Meta.key == key).values(value=value))
        for old in glob.glob(str(self.path / INDEX_DIR / "*.faiss")):
            os.unlink(old)
        self._meta.update(values)
        self._space = space
        log.info("library %s held no vectors yet: it now uses space %s", self.path, space.name)

    def close(self) -> None:
        """Release the database connections. The library must not be used afterwards."""
        self._indexes.clear()
        self._engine.dispose()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the space --------------------------------------------------------------

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

    # -- the public operations -----------------------------------------------------

    def index(self, paths: Sequence[str | os.PathLike[str]], **options: Any) -> IndexReport:
        """Index files and folders; see ``bindsearch.indexer.index_paths`` for the options."""
        from ..indexer import index_paths

        return index_paths(self, paths, **options)

    def watch(self, paths: Sequence[str | os.PathLike[str]], **options: Any) -> None:
        """Index files and folders, then keep them up to date; see ``bindsearch.indexer.watch.watch_paths``."""
        from ..indexer.watch import watch_paths

        watch_paths(self, paths, **options)

    def search(
        self,
        terms: Sequence[QueryTerm] | np.ndarray,
        targets: Iterable[Modality | str] | None = None,
        k: int = 10,
        *,
        windows: bool = False,
        filters: Filters | None = None,
        dedup: float | None = None,
    ) -> list[Hit]:
        """Search with query terms (or a ready vector); see ``bindsearch.search.search``."""
        from ..search import search

        return search(self, terms, targets=targets, k=k, windows=windows, filters=filters, dedup=dedup)

    def classify(self, files: Sequence[str | os.PathLike[str]], labels: Sequence[str], **options: Any) -> list:
        """Zero-shot labels of files in this library's space; see ``bindsearch.classify.classify``."""
        from ..classify import classify

        return classify(files, labels, space=self.space, **options)

    # -- tags ---------------------------------------------------------------------

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

    def export(self, file: str | os.PathLike[str], **options: Any) -> ExportReport:
        """Write vectors and metadata to a .npz or .parquet file; see ``bindsearch.export.export_library``."""
        from ..export import export_library

        return export_library(self, file, **options)

    def import_vectors(self, file: str | os.PathLike[str], **options: Any) -> ImportReport:
        """Add vectors computed elsewhere from a .npz or .parquet file; see ``bindsearch.bulk_import.import_file``."""
        from ..bulk_import import import_file

        return import_file(self, file, **options)

    def duplicates(self, threshold: float = 0.95,
                   modalities: Sequence[Modality | str] | None = None) -> list[DuplicateGroup]:
        """Groups of near-identical items (cosine >= ``threshold``), the one to keep first in each;
        see ``bindsearch.search.duplicates``."""
        from ..search.duplicates import find_duplicates

        with self._engine.connect() as conn:
            return find_duplicates(self, conn, threshold, modalities)

    def tags_of(self, ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        """The tags of the given items (those with none are left out)."""
        from .tags import tags_of

        with self._engine.connect() as conn:
            return tags_of(conn, ids)

    def unknown_tags(self, tags: Sequence[str]) -> list[str]:
        """Those of ``tags`` that no item carries."""
        from .tags import unknown_tags

        with self._engine.connect() as conn:
            return unknown_tags(conn, tags)

    # -- what searches need ----------------------------------------------------------

    def select(self, modality: Modality, filters: Filters) -> np.ndarray:
        """Ids of the embedded items of ``modality`` that pass ``filters``."""
        from .selection import selected_item_ids

        with self._engine.connect() as conn:
            return selected_item_ids(conn, modality, filters)

    def windows_of_items(self, item_ids: np.ndarray) -> np.ndarray:
        """Ids of the time windows of the given items."""
        from .selection import window_ids_of

        with self._engine.connect() as conn:
            return window_ids_of(conn, item_ids)

    def reference_sample(self, modality: Modality, size: int = 512) -> np.ndarray:
        """Vectors of ``modality`` that calibration measures a query against: a sample of its items'
        vectors, and of its time windows' where it has any (kept by each index until it changes)."""
        parts = [self.vector_index(modality).sample(size)]
        if modality in WINDOWED:
            windows = self.vector_index(modality, windows=True)
            if windows.size:
                parts.append(windows.sample(size))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def candidate_vectors(self, keys: Sequence[tuple[int, int | None]]) -> np.ndarray:
        """The vectors of search candidates, (item id, window id or None) each, from the FAISS indexes."""
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        modality_of = {i: m for i, (_, m) in self.items([item for item, _ in keys]).items()}
        rows = []
        for item_id, window_id in keys:
            modality = modality_of.get(item_id)
            if modality is None:  # deleted meanwhile: a vector that resembles nothing kept
                rows.append(np.zeros(self.dim, dtype=np.float32))
            elif window_id is None:
                rows.append(self.vector_index(modality).vectors(np.array([item_id]))[0])
            else:
                rows.append(self.vector_index(modality, windows=True).vectors(np.array([window_id]))[0])
        return np.stack(rows)

    def stored_item_vector(self, ref: int | str) -> tuple[list[int], np.ndarray]:
        """The stored vector of the item ``ref`` names (an id, or an indexed file's path), and the ids of
        every item of that file (a video's soundtrack too) and of every file with the same content (a
        symbolic link to it, a byte-identical copy), which a search by it leaves out."""
        from ..modality import modality_from_path

        with self._engine.connect() as conn:
            if isinstance(ref, int) or (ref.isdigit() and not os.path.exists(ref)):
                if not 0 <= int(ref) < 1 << 63:  # past SQLite's integers: no item has it
                    raise UsageError(f"no embedded item with id {ref} in the library")
                row = conn.execute(select(Item.id, Item.path, Item.modality).where(
                    Item.id == int(ref), Item.status == STATUS_OK)).first()
                if row is None:
                    raise UsageError(f"no embedded item with id {ref} in the library")
                rows = [row]
            else:
                path = os.path.abspath(ref)
                rows = conn.execute(select(Item.id, Item.path, Item.modality).where(
                    Item.path == path, Item.status == STATUS_OK).order_by(Item.modality)).all()
                if not rows:
                    raise UsageError(f"not in the library: {ref} (index it first, or give an item id)")
            chosen = rows[0]
            own = modality_from_path(chosen[1])
            for row in rows:
                if own is not None and row[2] == own.value:
                    chosen = row  # a video's own item rather than its soundtrack's
            same_file = conn.execute(select(Item.id).where(Item.path == chosen[1])).scalars().all()
            digest = conn.execute(select(Item.content_hash).where(Item.id == chosen[0])).scalar()
            if digest is not None:
                same_file += conn.execute(select(Item.id).where(Item.content_hash == digest)).scalars().all()
            data = conn.execute(select(Vector.data).where(Vector.item_id == chosen[0])).scalar_one()
        return sorted(set(same_file)), from_blobs([data], self.dim)[0]

    def info(self, max_failed: int | None = None) -> LibraryInfo:
        """Counts per modality, failed files and size on disk; LibraryError for a damaged database
        (SQLite's quick check runs first: a second for 100 000 items, where a query takes milliseconds)."""
        self.check_damage()
        try:
            return self._info(max_failed)
        except DatabaseError as exc:
            raise damaged(str(self.path), _sql_reason(exc)) from None

    def _info(self, max_failed: int | None) -> LibraryInfo:
        from .tags import tag_counts

        with self._engine.connect() as conn:
            rows = conn.execute(
                select(Item.modality, func.count()).where(Item.status == STATUS_OK).group_by(Item.modality)
            ).all()
            failed_q = select(Item.path, Item.error).where(Item.status == STATUS_FAILED).order_by(Item.path)
            if max_failed is not None:
                failed_q = failed_q.limit(max_failed)
            failed = [FileError(p, e or "") for p, e in conn.execute(failed_q)]
            window_rows = conn.execute(
                select(Item.modality, func.count()).join(Window, Window.item_id == Item.id).group_by(Item.modality)
            ).all()
            tags = tag_counts(conn)
        size = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        return LibraryInfo(
            path=str(self.path),
            space=self.space_name,
            fingerprint=self.fingerprint,
            dim=self.dim,
            schema_version=int(self._meta["schema_version"]),
            created_at=float(self._meta["created_at"]),
            counts={m: n for m, n in sorted(rows)},
            failed=failed,
            size_bytes=size,
            window_settings=self.window_settings.to_dict(),
            windows={m: n for m, n in sorted(window_rows)},
            tags=tags,
            read_only=self.read_only,
        )

    # -- reading ----------------------------------------------------------------

    def counts(self) -> dict[Modality, int]:
        """Number of embedded items per modality."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(Item.modality, func.count()).where(Item.status == STATUS_OK).group_by(Item.modality)
            ).all()
        return {Modality(m): n for m, n in rows}

    def modalities_with_vectors(self) -> list[Modality]:
        """The modalities whose index holds vectors, in the usual order (from the loaded indexes: no count query)."""
        with self._engine.connect() as conn:
            written = set(conn.execute(select(Meta.key).where(Meta.key.like("generation:%"))).scalars())
        return [m for m in Modality if _generation_key(m) in written and self.vector_index(m).size > 0]

    def items_under(self, roots: Sequence[str]) -> list[StoredItem]:
        """Every item whose path is one of ``roots`` or lies in a folder among them."""
        # A re-index reads every item under its folders, so this is plain SQLite and
        # plain tuples: no SQL compilation, no ORM rows (about 4x faster for 100k items).
        out: list[StoredItem] = []
        encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()  # as os.fsdecode
        modalities, make = _MODALITY_BY_VALUE, StoredItem._make
        raw = self._engine.raw_connection()
        try:
            cursor = raw.cursor()
            for root in roots:
                # Paths are stored as the OS's bytes (schema.FsPath).
                rows = cursor.execute(_ITEMS_UNDER_SQL, under(root)).fetchall()
                out += [
                    make((i, p.decode(encoding, errors), modalities[m], size, mtime, digest, status, windows, seconds,
                          error))
                    for i, p, m, size, mtime, digest, status, windows, seconds, error in rows
                ]
            cursor.close()
        finally:
            raw.close()
        return out

    def vector_by_hash(self, content_hash: str, modality: Modality) -> tuple[int, np.ndarray, float | None] | None:
        """An embedded item with this content hash and modality: its id, vector and duration (for copies).

        Only an item cut into windows under the current settings counts, for a
        modality that has windows, so that a copy gets its windows too.
        """
        query = (
            select(Item.id, Vector.data, Item.duration)
            .join(Vector, Vector.item_id == Item.id)
            .where(Item.content_hash == content_hash, Item.modality == modality.value, Item.status == STATUS_OK)
        )
        if modality in WINDOWED:
            query = query.where(Item.window_count.is_not(None))
        with self._engine.connect() as conn:
            row = conn.execute(query.limit(1)).first()
        if row is None:
            return None
        return row[0], from_blobs([row[1]], self.dim)[0], row[2]

    def windows_of(self, item_id: int, with_ids: bool = False) -> list[tuple]:
        """(start, end, vector) of an item's time windows, in time order; (id, start, end, vector) ``with_ids``."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(Window.id, Window.start, Window.end, Window.data)
                .where(Window.item_id == item_id).order_by(Window.start)
            ).all()
        vectors = from_blobs([r[3] for r in rows], self.dim)
        if with_ids:
            return [(r[0], r[1], r[2], v) for r, v in zip(rows, vectors)]
        return [(r[1], r[2], v) for r, v in zip(rows, vectors)]

    def windows(self, ids: Sequence[int]) -> dict[int, StoredWindow]:
        """The windows with the given ids."""
        out: dict[int, StoredWindow] = {}
        ids = [int(i) for i in ids]
        with self._engine.connect() as conn:
            for begin in range(0, len(ids), 500):
                chunk = ids[begin : begin + 500]
                query = select(Window.id, Window.item_id, Window.start, Window.end).where(Window.id.in_(chunk))
                for row in conn.execute(query):
                    out[row[0]] = StoredWindow(*row)
        return out

    def known_hashes(self, modalities: Iterable[Modality]) -> set[tuple[str, Modality]]:
        """(content hash, modality) of every embedded item of these modalities: what needs no embedding."""
        wanted = [m.value for m in modalities]
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(Item.content_hash, Item.modality, Item.window_count).where(
                    Item.status == STATUS_OK, Item.content_hash.is_not(None), Item.modality.in_(wanted)
                )
            )
            # Audio or video content not yet cut into windows is not "known": it must be read again.
            return {(h, Modality(m)) for h, m, w in rows if w is not None or Modality(m) not in WINDOWED}

    def items(self, ids: Sequence[int]) -> dict[int, tuple[str, Modality]]:
        """Path and modality of the given item ids."""
        out: dict[int, tuple[str, Modality]] = {}
        ids = [int(i) for i in ids]
        with self._engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                for row in conn.execute(select(Item.id, Item.path, Item.modality).where(Item.id.in_(chunk))):
                    out[row[0]] = (row[1], Modality(row[2]))
        return out

    def items_with_windows(self, ids: Sequence[int]) -> set[int]:
        """Those of the given item ids that have time windows."""
        out: set[int] = set()
        ids = [int(i) for i in ids]
        with self._engine.connect() as conn:
            for begin in range(0, len(ids), 500):
                chunk = ids[begin : begin + 500]
                out.update(conn.execute(select(Item.id).where(Item.id.in_(chunk), Item.window_count > 0)).scalars())
        return out

    def stored_vectors(self, modality: Modality, windows: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every embedded item of ``modality`` (or of its windows), read from SQLite."""
        if windows:
            query = (
                select(Window.id, Window.data)
                .join(Item, Window.item_id == Item.id)
                .where(Item.modality == modality.value)
                .order_by(Window.id)
            )
        else:
            query = (
                select(Item.id, Vector.data)
                .join(Vector, Vector.item_id == Item.id)
                .where(Item.modality == modality.value, Item.status == STATUS_OK)
                .order_by(Item.id)
            )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        return ids, from_blobs([r[1] for r in rows], self.dim)

    def refresh(self) -> None:
        """Forget the loaded indexes another process has changed since (their generation moved on):
        the next use loads them again. Every search starts with this, so that a library kept open sees
        what other processes index meanwhile."""
        if not self._indexes:
            return
        with self._engine.connect() as conn:
            current = dict(conn.execute(select(Meta.key, Meta.value).where(Meta.key.like("generation:%"))).all())
        for key in list(self._indexes):
            if int(current.get(_generation_key(*key), 0)) != self._index_generations.get(key):
                self._indexes.pop(key, None)

    def vector_index(self, modality: Modality, windows: bool = False) -> VectorIndex:
        """The FAISS index of ``modality`` (of its windows with ``windows``), loaded once.

        Rebuilt from SQLite if stale, missing or corrupt. Ids are item ids, or
        window ids for a window index.
        """
        key = (modality, windows)
        if key not in self._indexes:
            index = self._load_or_rebuild(modality, windows)
            if key in self._dropped:
                index.remove(np.array(sorted(self._dropped[key]), dtype=np.int64))
            self._indexes[key] = index
        return self._indexes[key]

    def _load_or_rebuild(self, modality: Modality, windows: bool) -> VectorIndex:
        generation, count = self._generation_and_count(modality, windows)
        self._index_generations[(modality, windows)] = generation
        path = self._index_file(modality, windows, generation)
        problem = None
        if count == 0:
            return VectorIndex(self.dim)
        if not os.path.exists(path):
            problem = "missing or out of date"
        else:
            try:
                index = VectorIndex.load(path, self.dim)
                if index.size == count:
                    with self._engine.connect() as conn:
                        problem = index_disagreement(conn, index, modality, windows)
                    if problem is None:
                        return index
                else:
                    problem = f"holds {index.size} vectors, the library {count}"
            except ValueError as exc:
                problem = str(exc)
        ids, vectors = self.stored_vectors(modality, windows)
        index = VectorIndex(self.dim)
        index.add(ids, vectors)
        log.warning("rebuilt the %s index of library %s from stored vectors (%s; %d vectors)",
                    _index_name(modality, windows), self.path, problem, index.size)
        if self.read_only:
            return index  # answers queries from memory
        try:
            self._save_index(modality, windows, index, generation)
        except OSError:
            pass  # a library that cannot be written still answers queries from the rebuilt index in memory
        return index

    def _generation_and_count(self, modality: Modality, windows: bool = False) -> tuple[int, int]:
        if windows:
            count_query = (
                select(func.count()).select_from(Window).join(Item, Window.item_id == Item.id)
                .where(Item.modality == modality.value)
            )
        else:
            count_query = select(func.count()).select_from(Item).where(
                Item.modality == modality.value, Item.status == STATUS_OK
            )
        with self._engine.connect() as conn:
            key = _generation_key(modality, windows)
            generation = conn.execute(select(Meta.value).where(Meta.key == key)).scalar()
            count = conn.execute(count_query).scalar_one()
        return int(generation or 0), int(count)

    def _index_file(self, modality: Modality, windows: bool, generation: int) -> str:
        return str(self.path / INDEX_DIR / f"{_index_name(modality, windows)}-g{generation}.faiss")

    def _save_index(self, modality: Modality, windows: bool, index: VectorIndex, generation: int) -> None:
        target = self._index_file(modality, windows, generation)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        index.save(target)
        # Older generations go; a newer one (a writer saved it meanwhile) stays.
        name = _index_name(modality, windows)
        for old in glob.glob(str(self.path / INDEX_DIR / f"{name}-g*.faiss")):
            number = os.path.basename(old)[len(name) + 2 : -len(".faiss")]
            if number.isdigit() and int(number) < generation:
                try:
                    os.unlink(old)
                except OSError:
                    pass

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
            if conn.execute(select(Meta.value).where(Meta.key == "windows")).first() is None:
                conn.execute(Meta.__table__.insert().values(key="windows", value=value))
            else:
                conn.execute(update(Meta).where(Meta.key == "windows").values(value=value))
            if settings.enabled:
                conn.execute(update(Item).where(windowed).values(window_count=None))
            else:
                conn.execute(delete(Window))
                conn.execute(update(Item).where(windowed).values(window_count=0))
                for modality in WINDOWED:
                    _bump_generation(conn, modality, windows=True)
        self._meta["windows"] = value
        if not settings.enabled:
            for modality in WINDOWED:
                self._indexes.pop((modality, True), None)
                for old in glob.glob(str(self.path / INDEX_DIR / f"{_index_name(modality, True)}-g*.faiss")):
                    try:
                        os.unlink(old)
                    except OSError:
                        pass
        return True

    # -- writing ------------------------------------------------------------------

    def _refuse_if_read_only(self, action: str) -> None:
        if self.read_only:
            raise refuse(self.path, self.read_only, action)

    def check_damage(self) -> None:
        """LibraryError if SQLite's quick check finds the database damaged (it reads every page)."""
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

        FAISS indexes are saved when the block ends, however it ends; a process
        killed before that leaves them stale, and they are rebuilt on next use.
        Refused (ReadOnlyLibraryError) for a library this process cannot write, and
        (LibraryError) for one whose database SQLite's quick check finds damaged.
        """
        self._refuse_if_read_only("index, remove or change its items")
        lock = WriterLock(str(self.path / LOCK_FILE), str(self.path))
        lock.acquire()
        try:
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
        for stale in glob.glob(str(self.path / INDEX_DIR / ".tmp-*")):  # left by a process killed while saving
            try:
                os.unlink(stale)
            except OSError:
                pass
        writer = LibraryWriter(self)
        try:
            try:
                yield writer
            finally:
                try:
                    writer.save_indexes()
                finally:
                    lock.release()
        except Exception as exc:
            # A batch's transaction is all or nothing, and a FAISS file not written is rebuilt from SQLite.
            if not isinstance(exc, BindsearchError) and disk_is_full(exc, self.path):
                raise DiskFullError(disk_full_message(self.path, kept)) from None
            raise


def _remove_abandoned_staging(folder: Path) -> None:
    """Delete the staging folders of library creations whose process is gone (killed halfway)."""
    for staging in folder.parent.glob(f".{folder.name}.creating-*"):
        pid = staging.name[len(f".{folder.name}.creating-") :].split("-", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue  # another process is creating it right now
        shutil.rmtree(staging, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_ITEMS_UNDER_SQL = (
    "SELECT id, path, modality, size, mtime_ns, content_hash, status, window_count, duration, error "
    f"FROM {Item.__tablename__} "
    "WHERE path = ? OR (path >= ? AND path < ?)"
)


class _ModalityByValue(dict):
    def __missing__(self, value: str) -> Modality:
        return Modality(value)  # not a modality: ValueError, as before


_MODALITY_BY_VALUE = _ModalityByValue({m.value: m for m in Modality})



def _read_only_engine(db_path: Path) -> Engine:
    """An engine on a database this process cannot write: the first read-only mode SQLite reads it in."""
    problem: Exception | None = None
    for uri in read_only_uris(db_path):
        engine = _engine(db_path, uri)
        try:
            with engine.connect() as conn:
                conn.execute(select(Meta.key).limit(1)).all()
            return engine
        except (DatabaseError, OperationalError) as exc:
            engine.dispose()
            problem = exc
    raise LibraryError(f"{db_path} is not a readable bindsearch library ({_sql_reason(problem)})")


def _engine(db_path: Path, read_only_uri: str | None = None) -> Engine:
    def connect() -> sqlite3.Connection:
        if read_only_uri is not None:
            return sqlite3.connect(read_only_uri, uri=True, timeout=30, check_same_thread=False)
        return sqlite3.connect(str(db_path), timeout=30, check_same_thread=False)

    engine = create_engine("sqlite://", creator=connect)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if read_only_uri is None:
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, nor it them
        cur.execute("PRAGMA synchronous=FULL")  # a committed batch survives power loss too
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


def _sql_reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]
