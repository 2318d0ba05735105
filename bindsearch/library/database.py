"""The SQLite engines of a library: one that writes (WAL, full sync), one for a database this process cannot write."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.exc import DatabaseError, OperationalError

from ..errors import LibraryError
from .read_only import read_only_uris
from .schema import Meta


def sqlite_engine(db_path: Path, read_only_uri: str | None = None) -> Engine:
    """An engine on ``db_path`` (or, with ``read_only_uri``, on that read-only URI of it)."""
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


@contextmanager
def raw_cursor(engine: Engine) -> Iterator[sqlite3.Cursor]:
    """A plain SQLite cursor on a pooled connection, for the reads every search or re-index makes: rows as
    tuples, with no statement compiled and no ORM row built (several times faster for many rows)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
    finally:
        raw.close()


def read_only_engine(db_path: Path) -> Engine:
    """An engine on a database this process cannot write: the first read-only mode SQLite reads it in."""
    problem: Exception | None = None
    for uri in read_only_uris(db_path):
        engine = sqlite_engine(db_path, uri)
        try:
            with engine.connect() as conn:
                conn.execute(select(Meta.key).limit(1)).all()
            return engine
        except (DatabaseError, OperationalError) as exc:
            engine.dispose()
            problem = exc
    raise LibraryError(f"{db_path} is not a readable bindsearch library ({sql_reason(problem)})")


def sql_reason(exc: Exception) -> str:
    """The first line of what SQLite said."""
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]
