"""Bringing a library written by an older bindsearch up to the current schema."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable

import numpy as np
from sqlalchemy import Connection, Engine, text

from ..errors import LibraryError
from .database import cursor_of
from .schema import SCHEMA_VERSION

log = logging.getLogger("bindsearch")
_CHUNK = 4096  # vectors moved per step: memory stays at a few MiB whatever the library's size


def _add_windows(conn: Connection, folder: str) -> None:
    """1 -> 2: time windows of long audio and video.

    Existing audio and video items get ``window_count`` NULL, so the next run
    over their folders cuts the long ones into windows.
    """
    conn.execute(text("ALTER TABLE items ADD COLUMN window_count INTEGER"))
    # As schema 2 made it (not from today's model: later steps change the table).
    conn.execute(text(
        "CREATE TABLE windows (id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
        "item_id INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE, "
        'start FLOAT NOT NULL, "end" FLOAT NOT NULL, data BLOB NOT NULL)'))
    conn.execute(text("CREATE INDEX ix_windows_item_id ON windows (item_id)"))


def _add_tags_and_durations(conn: Connection, folder: str) -> None:
    """2 -> 3: tags on items, and the duration of audio and video items.

    Durations of existing items are NULL; the next run over their folders reads
    them from the files' headers (no decoding, no embedding).
    """
    from .schema import Tag

    conn.execute(text("ALTER TABLE items ADD COLUMN duration REAL"))
    Tag.__table__.create(conn)


def _vectors_to_files(conn: Connection, folder: str) -> None:
    """3 -> 4: vectors move out of SQLite into one append-only file per index (``vectors/<name>.f32``).

    Each modality's vectors (and its windows') are streamed a chunk at a time, in id order, into a new
    file, made durable, and their rows given its slots and CRC-32s; then the blobs go. Until this
    transaction commits no row points at the new files, so a migration killed halfway leaves a schema-3
    library (and files the next attempt replaces). A blob of the wrong length, which could never be
    searched, marks its item failed, to be read again by the next index run. The old exact index files go
    too: exact indexes are now built from the vector files.
    """
    from .records import VECTOR_DIR
    from .soundness import UNUSABLE_STORED
    from .vector_files import row_crcs
    from .vector_store import VectorStore

    dim = int(conn.execute(text("SELECT value FROM meta WHERE key = 'dim'")).scalar_one())
    target = os.path.join(folder, VECTOR_DIR)
    os.makedirs(target, exist_ok=True)
    for leftover in glob.glob(os.path.join(target, "*.f32")):  # of a migration killed before its commit
        os.unlink(leftover)
    conn.execute(text("ALTER TABLE items ADD COLUMN slot INTEGER"))
    conn.execute(text("ALTER TABLE items ADD COLUMN crc INTEGER"))
    conn.execute(text("ALTER TABLE windows ADD COLUMN slot INTEGER"))
    conn.execute(text("ALTER TABLE windows ADD COLUMN crc INTEGER"))
    modalities = [m for (m,) in conn.execute(text("SELECT DISTINCT modality FROM items"))]
    raw = cursor_of(conn)  # (plain cursor: a million blobs through the ORM is slow)
    moved = 0
    for modality in modalities:
        for windows in (False, True):
            name = f"{modality}.windows" if windows else modality
            if windows:
                select_sql = ("SELECT windows.id, windows.data FROM windows JOIN items ON items.id = windows.item_id "
                              "WHERE items.modality = ? ORDER BY windows.id")
                update_sql = "UPDATE windows SET slot = ?, crc = ? WHERE id = ?"
            else:
                select_sql = ("SELECT items.id, vectors.data FROM vectors JOIN items ON items.id = vectors.item_id "
                              "WHERE items.modality = ? AND items.status = 'ok' ORDER BY items.id")
                update_sql = "UPDATE items SET slot = ?, crc = ? WHERE id = ?"
            reader = cursor_of(conn)
            reader.execute(select_sql, (modality,))
            store: VectorStore | None = None
            try:
                while rows := reader.fetchmany(_CHUNK):
                    good = [(i, data) for i, data in rows if data is not None and len(data) == 4 * dim]
                    wrong = [i for i, data in rows if data is None or len(data) != 4 * dim]
                    if wrong:
                        _mark_unmovable(raw, wrong, windows, UNUSABLE_STORED)
                    if not good:
                        continue
                    if store is None:
                        store = VectorStore(os.path.join(target, f"{name}.f32"), dim, writable=True)
                    vectors = np.frombuffer(b"".join(d for _, d in good), dtype="<f4").reshape(len(good), dim)
                    slots, _ = store.append(vectors)
                    crcs = row_crcs(vectors)
                    raw.executemany(update_sql, [(int(s), int(c), int(i)) for s, c, (i, _) in zip(slots, crcs, good)])
                    moved += len(good)
            finally:
                reader.close()
                if store is not None:
                    store.close()
    raw.execute("DELETE FROM windows WHERE slot IS NULL")
    raw.execute("UPDATE items SET slot = NULL, crc = NULL WHERE status != 'ok'")
    raw.execute("DROP TABLE vectors")
    raw.execute("ALTER TABLE windows DROP COLUMN data")
    raw.close()
    for old in glob.glob(os.path.join(folder, "index", "*.faiss")):
        try:
            os.unlink(old)
        except OSError:
            pass
    log.info("library %s: %d vectors moved from its database into vector files", folder, moved)


def _mark_unmovable(cursor: object, ids: list[int], windows: bool, reason: str) -> None:
    """Items (or the items of windows) whose stored blob cannot be a vector: failed, read again next run."""
    if windows:
        marks = ",".join("?" * len(ids))
        cursor.execute(f"SELECT DISTINCT item_id FROM windows WHERE id IN ({marks})", ids)  # type: ignore[attr-defined]
        ids = [row[0] for row in cursor.fetchall()]  # type: ignore[attr-defined]
    cursor.executemany(  # type: ignore[attr-defined]
        "UPDATE items SET status = 'failed', error = ?, content_hash = NULL, window_count = NULL, mtime_ns = -1 "
        "WHERE id = ?", [(reason, int(i)) for i in ids])
    cursor.executemany("DELETE FROM windows WHERE item_id = ?", [(int(i),) for i in ids])  # type: ignore[attr-defined]


def _add_shared_write_tables(conn: Connection, folder: str) -> None:
    """4 -> 5: the tables of libraries that several processes write at once (vectors still to be made in
    another store, index runs and the files they claimed); empty in a library folder."""
    from .schema import SHARED_WRITE_TABLES, Base

    Base.metadata.create_all(conn, tables=list(SHARED_WRITE_TABLES))


# MIGRATIONS[n] upgrades a library from schema n to n + 1, inside one transaction.
MIGRATIONS: dict[int, Callable[[Connection, str], None]] = {
    1: _add_windows, 2: _add_tags_and_durations, 3: _vectors_to_files, 4: _add_shared_write_tables,
}


def reclaim_vector_space(engine: Engine, folder: object) -> None:
    """Give back to the disk the pages the vectors took in the database, after they moved out (VACUUM
    cannot run inside the migration's transaction). Best effort: a library that cannot be vacuumed now
    (a full disk, another process reading) only stays larger."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM")
    except Exception as exc:  # (nothing is lost: the file keeps its free pages)
        log.info("library %s: could not compact its database (%s)", folder, exc)


def migrate(conn: Connection, found: int, where: str) -> int:
    """Run the migrations from ``found`` to SCHEMA_VERSION in the library folder ``where``; the new version."""
    if found > SCHEMA_VERSION:
        raise LibraryError(
            f"library {where} has schema {found}, newer than this bindsearch understands ({SCHEMA_VERSION}): "
            "upgrade bindsearch"
        )
    # A write first, so that the driver opens the transaction now: it would run the schema changes that
    # follow (ALTER TABLE) outside of one, and a migration failing halfway could not be rolled back.
    conn.execute(text("UPDATE meta SET value = value WHERE key = 'schema_version'"))
    version = found
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise LibraryError(f"library {where} has schema {version}, which cannot be migrated")
        step(conn, where)
        version += 1
    return version
