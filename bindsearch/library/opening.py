"""Opening a library folder (migrating its schema, binding its space) and creating a new one."""

from __future__ import annotations

import glob
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, delete, inspect, select, update
from sqlalchemy.exc import DatabaseError, IntegrityError, InterfaceError, OperationalError

from ..errors import DiskFullError, LibraryError, LibraryLockedError, SpaceMismatchError
from ..paths import default_library_path
from ..processes import process_alive
from ..spaces import Space, load_space
from ..windows import WindowSettings
from .config import LibraryConfig, is_config_path, read_config
from .database import read_only_engine, shown_url, sql_reason, sqlite_engine, url_engine
from .disk_space import disk_full_message, disk_is_full
from .lock import WriterLock
from .migrations import migrate, reclaim_vector_space
from .precisions import KEY as PRECISIONS_KEY
from .read_only import refuse, why_read_only
from .rebinding import rebind, rebindable
from .records import DB_FILE, INDEX_DIR, LOCK_FILE, VECTOR_DIR
from .schema import SCHEMA_VERSION, Base, Item, Meta
from .soundness import CHECKED_KEY, check_stored_vectors
from .vector_stores import VectorStores
from .writer import _bump_generation

if TYPE_CHECKING:
    from .store import LibraryStore

L = TypeVar("L", bound="LibraryStore")

VECTORS_KEY = "vector_store"  # the kind of vector store a library's metadata goes with: "faiss" or "milvus"

log = logging.getLogger("bindsearch")


def open_library(
    cls: type[L],
    path: str | os.PathLike[str] | None = None,
    space: str | os.PathLike[str] | dict[str, Any] | Space | None = None,
    *,
    create: bool = False,
) -> L:
    """Open the library at ``path`` (default: ``BINDSEARCH_LIBRARY`` or the user data folder).

    An existing library remembers its space: ``space`` may be omitted, and if
    given must be the same space, else SpaceMismatchError. With
    ``create=True`` a missing library is created with ``space`` (default:
    ``BINDSEARCH_SPACE`` or the built-in default space). A library this
    process cannot write is opened read-only (``read_only`` says why): it
    can be searched, and every change raises ReadOnlyLibraryError.
    """
    given = Path(path).expanduser() if path is not None else default_library_path()
    if is_config_path(given):
        config = read_config(given.absolute())
        if space is None and config.space is not None and create:
            space = config.space
        engine, meta = _open_database(config, create)
        if meta is None:
            return create_in_database(cls, config, engine, load_space(space))
        try:  # (this machine's folder of a library whose vectors live elsewhere: made on first use)
            config.folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass
        folder, read_only, location = config.folder, why_read_only(config.folder, None), config.file
        db_path = None
    else:
        folder = given.absolute()
        db_path = folder / DB_FILE
        if not db_path.exists():
            if not create:
                raise LibraryError(f"no library at {folder} (index some files to create one)")
            return create_library(cls, folder, load_space(space))
        read_only = why_read_only(folder, db_path)
        engine = read_only_engine(db_path) if read_only else sqlite_engine(db_path)
        meta = _read_meta(engine, folder, db_path, read_only)
        location = folder
    if "space_spec" not in meta:
        engine.dispose()
        raise LibraryError(f"{db_path or folder} is not a bindsearch library (it records no space)")
    library = cls(folder, engine, meta, None, read_only, location)
    if location != folder:
        _attach(library, config)
    if read_only:
        log.warning("library %s is read-only (%s): it can be searched, not changed; "
                    "indexes rebuilt from it are kept in memory only", folder, read_only)
    if space is not None:
        requested = load_space(space)
        # Another number of dimensions tells a different space without the fingerprint, whose
        # checkpoint identity could mean a download.
        other_dim = requested.dim != int(meta["dim"])
        differs = other_dim or requested.fingerprint != meta["space_fingerprint"]
        if differs and _holds_no_vectors(library):
            if read_only:
                engine.dispose()
                raise refuse(folder, read_only, f"switch it to space {requested.name}")
            # Nothing embedded yet (say a first run could not load its model): nothing to lose.
            # Under the writer lock, so that a run of the first space is not overtaken.
            try:
                with WriterLock(str(folder / LOCK_FILE), str(folder)):
                    if _holds_no_vectors(library):
                        _rebind(library, requested)
            except LibraryLockedError:
                engine.dispose()
                raise
        elif differs and (changed := rebindable(library, requested)) is not None:
            # A space bound from the library's own (or from its base): what it leaves alone is kept.
            if read_only:
                engine.dispose()
                raise refuse(folder, read_only, f"switch it to space {requested.name}")
            rebind(library, requested, changed)
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


def _read_meta(engine: Engine, folder: Path, db_path: Path, read_only: str | None) -> dict[str, str]:
    """The meta table of a library's SQLite file, its schema migrated first."""
    try:
        return _migrated_meta(engine, str(folder), read_only, folder)
    except (DatabaseError, OperationalError) as exc:
        engine.dispose()
        if disk_is_full(exc, folder):  # SQLite needs room for its journal even to read
            raise DiskFullError(disk_full_message(folder, "nothing was changed")) from None
        raise LibraryError(f"{db_path} is not a readable bindsearch library ({sql_reason(exc)})") from None
    except LibraryError:
        engine.dispose()
        raise


def _migrated_meta(engine: Engine, name: str, read_only: str | None, folder: Path) -> dict[str, str]:
    with engine.begin() as conn:
        meta = {row.key: row.value for row in conn.execute(select(Meta.key, Meta.value))}
        found = int(meta.get("schema_version", "0"))
        if found != SCHEMA_VERSION and read_only:
            raise refuse(folder, read_only, f"upgrade it from schema {found} to {SCHEMA_VERSION}")
        if found != SCHEMA_VERSION:
            migrate(conn, found, name)
            conn.execute(update(Meta).where(Meta.key == "schema_version").values(value=str(SCHEMA_VERSION)))
            meta["schema_version"] = str(SCHEMA_VERSION)
    if found < 4 <= SCHEMA_VERSION:
        reclaim_vector_space(engine, folder)
    return meta


def _open_database(config: LibraryConfig, create: bool) -> tuple[Engine, dict[str, str] | None]:
    """An engine on the metadata database a library file names, and its meta table (None when the database
    holds no library yet and ``create`` is asked)."""
    engine = sqlite_engine(Path(config.metadata[len("sqlite:///"):].partition("?")[0])) \
        if config.metadata.startswith("sqlite:///") else url_engine(config.metadata)
    try:
        if not inspect(engine).has_table(Meta.__tablename__):
            if create:
                return engine, None
            raise LibraryError(f"no library in {config.shown} yet (index some files to create one)")
        meta = _migrated_meta(engine, config.shown, None, config.folder)
        kind = "milvus" if config.milvus is not None else "faiss"
        if meta.get(VECTORS_KEY, "faiss") != kind:  # (a library made before this key kept its vectors in files)
            raise LibraryError(f"the library in {shown_url(config.metadata)} keeps its vectors in "
                               f"{'Milvus' if kind == 'faiss' else 'a folder of vector files'}, not in "
                               f"{config.vectors}: name its own vector store in {config.file}")
    except (DatabaseError, OperationalError, InterfaceError) as exc:
        engine.dispose()
        if disk_is_full(exc, config.folder):
            raise DiskFullError(disk_full_message(config.folder, "nothing was changed")) from None
        raise LibraryError(f"cannot open the metadata of library {config.shown}: {sql_reason(exc)}") from None
    except LibraryError:
        engine.dispose()
        raise
    return engine, meta


def create_in_database(cls: type[L], config: LibraryConfig, engine: Engine, space: Space) -> L:
    """Make a new library in the (empty) database a library file names, with its vector folder."""
    try:
        config.folder.mkdir(parents=True, exist_ok=True)
        (config.folder / INDEX_DIR).mkdir(exist_ok=True)
    except OSError as exc:
        engine.dispose()
        raise LibraryError(f"cannot create the vector folder {config.folder}: {exc.strerror or exc}") from None
    meta = {**_new_meta(space), VECTORS_KEY: "milvus" if config.milvus is not None else "faiss"}
    if config.milvus is not None:  # a Milvus that cannot be reached is said before the database is written
        from .milvus_vectors import MilvusVectors

        probe = MilvusVectors(config.milvus, f"bs_{meta['library_id']}", space.dim, engine, config.folder)
        try:
            probe.check()
        except BaseException:
            engine.dispose()
            raise
        finally:
            probe.close()
    try:
        with engine.begin() as conn:  # (PostgreSQL makes tables in a transaction: all or nothing)
            Base.metadata.create_all(conn)
            conn.execute(Meta.__table__.insert(), [{"key": k, "value": v} for k, v in meta.items()])
    except IntegrityError:  # another process created it first: use theirs
        engine.dispose()
        return open_library(cls, config.file, space)
    except (DatabaseError, OperationalError, InterfaceError) as exc:
        engine.dispose()
        if inspect_has_meta(config):
            return open_library(cls, config.file, space)
        raise LibraryError(f"cannot create library {config.shown}: {sql_reason(exc)}") from None
    library = cls(config.folder, engine, meta, space, location=config.file)
    _attach(library, config)
    return library


def _attach(library: LibraryStore, config: LibraryConfig) -> None:
    """What a library file adds to an open library: its database's URL, and its vectors where they are
    kept elsewhere (Milvus)."""
    library.metadata_url = config.metadata
    if config.milvus is not None:
        from .milvus_vectors import MilvusVectors

        if "library_id" not in library._meta:
            library._engine.dispose()
            raise LibraryError(f"library {config.shown} has no library id to name its Milvus collections: "
                               "it was made for vectors in a folder")
        library.vectors.close()
        library.vectors = MilvusVectors(config.milvus, f"bs_{library._meta['library_id']}", library.dim,
                                        library._engine, config.folder)


def inspect_has_meta(config: LibraryConfig) -> bool:
    """Whether the database of ``config`` holds a library (one made by another process meanwhile)."""
    try:
        engine, meta = _open_database(config, create=True)
    except LibraryError:
        return False
    engine.dispose()
    return meta is not None


def _new_meta(space: Space) -> dict[str, str]:
    return {
        "library_id": secrets.token_hex(6),  # (names its collections in a vector store it may share)
        "schema_version": str(SCHEMA_VERSION),
        "space_spec": json.dumps(space.spec, sort_keys=True),
        "space_name": space.name,
        "space_fingerprint": space.fingerprint,
        "dim": str(space.dim),
        "created_at": repr(time.time()),
        "windows": json.dumps(WindowSettings().to_dict(), sort_keys=True),
        CHECKED_KEY: "1",  # every vector it will hold is checked before it is stored
    }


def create_library(cls: type[L], folder: Path, space: Space) -> L:
    """Make a new library at ``folder`` bound to ``space``: built aside, then renamed into place."""
    if folder.exists() and not folder.is_dir():
        raise LibraryError(f"cannot create a library at {folder}: it is a file")
    if (folder / DB_FILE).exists():  # another process created it meanwhile: use it
        return open_library(cls, folder, space)
    if folder.is_dir() and any(folder.iterdir()):
        raise LibraryError(f"cannot create a library at {folder}: the folder exists and is not a library")
    # Built in a temporary folder beside the target and renamed into place: a process
    # killed halfway leaves no half-made library, only a hidden folder that is cleared next time.
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_staging(folder)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.creating-{os.getpid()}-", dir=folder.parent))
        (staging / INDEX_DIR).mkdir()
    except OSError as exc:
        raise LibraryError(f"cannot create a library at {folder}: {exc.strerror or exc}") from None
    engine = sqlite_engine(staging / DB_FILE)
    meta = _new_meta(space)
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
            return open_library(cls, folder, space)
        if disk_is_full(exc, folder.parent):
            raise DiskFullError(disk_full_message(folder, "no library was made")) from None
        reason = getattr(exc, "strerror", None) or sql_reason(exc)
        raise LibraryError(f"cannot create a library at {folder}: {reason}") from None
    return cls(folder, sqlite_engine(folder / DB_FILE), meta, space)


def _holds_no_vectors(library: LibraryStore) -> bool:
    with library._engine.connect() as conn:
        return conn.execute(select(Item.id).where(Item.slot.is_not(None)).limit(1)).first() is None


def _rebind(library: LibraryStore, space: Space) -> None:
    values = {
        "space_spec": json.dumps(space.spec, sort_keys=True),
        "space_name": space.name,
        "space_fingerprint": space.fingerprint,
        "dim": str(space.dim),
    }
    with library._engine.begin() as conn:
        conn.execute(delete(Item))
        conn.execute(delete(Meta).where(Meta.key == PRECISIONS_KEY))  # (what embedded the old space's vectors)
        for key, value in values.items():
            conn.execute(update(Meta).where(Meta.key == key).values(value=value))
    for old in glob.glob(str(library.path / INDEX_DIR / "*")) + glob.glob(str(library.path / VECTOR_DIR / "*")):
        os.unlink(old)
    library.indexes.loaded.clear()
    library._meta.update(values)
    if getattr(library.vectors, "shared", False):  # (collections of the old dimension: made anew when used)
        from .milvus_vectors import MilvusVectors

        old_store = library.vectors
        old_store.drop_all()
        library.vectors = MilvusVectors(old_store.uri, old_store.prefix, space.dim, library._engine,
                                        old_store.folder)
    else:
        library.vectors.close()
        library.vectors = VectorStores(library.path, space.dim)
    library._space = space
    log.info("library %s held no vectors yet: it now uses space %s", library.path, space.name)


def _remove_abandoned_staging(folder: Path) -> None:
    """Delete the staging folders of library creations whose process is gone (killed halfway)."""
    for staging in folder.parent.glob(f".{folder.name}.creating-*"):
        pid = staging.name[len(f".{folder.name}.creating-") :].split("-", 1)[0]
        if pid.isdigit() and process_alive(int(pid)):
            continue  # another process is creating it right now
        shutil.rmtree(staging, ignore_errors=True)
