"""Turning a library of today's schema back into how schema 3 stored it, for the migration tests.

Schema 3 kept every vector in SQLite: a ``vectors`` table of (item_id, float32 blob) and a ``data`` blob in
each ``windows`` row; there were no vector files and no slot or checksum columns.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np

HEADER_BYTES = 4096  # of a vector file (bindsearch.library.vector_files), read here without bindsearch


def _rows(folder: Path, name: str, dim: int, slots: list[int]) -> list[bytes]:
    if not slots:
        return []
    data = np.fromfile(folder / "vectors" / f"{name}.f32", dtype="<f4", offset=HEADER_BYTES).reshape(-1, dim)
    return [data[s].tobytes() for s in slots]


def to_schema_3(library: Path) -> None:
    """Rewrite the library at ``library`` in place as schema 3 stored it."""
    with sqlite3.connect(library / "library.sqlite") as db:
        dim = int(db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()[0])
        db.execute("CREATE TABLE vectors (item_id INTEGER NOT NULL PRIMARY KEY REFERENCES items (id) "
                   "ON DELETE CASCADE, data BLOB NOT NULL)")
        db.execute("ALTER TABLE windows ADD COLUMN data BLOB")
        items = db.execute("SELECT id, modality, slot FROM items WHERE status = 'ok' ORDER BY id").fetchall()
        for modality in {m for _, m, _ in items}:
            mine = [(i, s) for i, m, s in items if m == modality]
            blobs = _rows(library, modality, dim, [s for _, s in mine])
            db.executemany("INSERT INTO vectors (item_id, data) VALUES (?, ?)",
                           [(i, b) for (i, _), b in zip(mine, blobs)])
            windows = db.execute("SELECT windows.id, windows.slot FROM windows JOIN items ON items.id = "
                                 "windows.item_id WHERE items.modality = ? ORDER BY windows.id", (modality,)).fetchall()
            blobs = _rows(library, f"{modality}.windows", dim, [s for _, s in windows])
            db.executemany("UPDATE windows SET data = ? WHERE id = ?", [(b, i) for (i, _), b in zip(windows, blobs)])
        for table in ("items", "windows"):
            db.execute(f"ALTER TABLE {table} DROP COLUMN slot")
            db.execute(f"ALTER TABLE {table} DROP COLUMN crc")
        db.execute("DELETE FROM meta WHERE key LIKE 'build:%'")
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    shutil.rmtree(library / "vectors", ignore_errors=True)
    for old in (library / "index").glob("*"):
        old.unlink()
