"""The engines of a library's metadata: SQLite (one that writes, WAL and full sync; one for a database this
process cannot write) or any other SQLAlchemy URL (PostgreSQL tested), and the plain cursor its hot paths read
and write through, the same SQL on either."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError

from ..errors import LibraryError, first_line
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


def url_engine(url: str) -> Engine:
    """An engine on the database at a SQLAlchemy ``url`` (``postgresql://user@host/db``; psycopg 3 is the
    driver a bare ``postgresql://`` gets). Connections are checked before use: a server restarted meanwhile
    costs one reconnect, not an error."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise LibraryError(f"{url!r} is not a database URL (postgresql://user@host/database, sqlite:///file)") \
            from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("postgresql", "sqlite"):
        raise LibraryError(f"database {shown_url(url)}: a library's metadata lives in PostgreSQL "
                           "(postgresql://user@host/database) or SQLite (sqlite:///file)")
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as exc:
        hint = " (pip install 'bindsearch[postgres]')" if parsed.drivername.startswith("postgresql") else ""
        raise LibraryError(f"no driver for database {shown_url(url)}: {first_line(exc)}{hint}") from None


def shown_url(url: str) -> str:
    """``url`` as messages show it: with its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class Cursor:
    """A DB-API cursor taking SQL written with ``?`` placeholders on any engine: rows as plain tuples, no
    statement compiled, no ORM row built (several times faster than SQLAlchemy's results for many rows)."""

    def __init__(self, cursor: Any, qmark: bool) -> None:
        self.raw = cursor
        self._qmark = qmark

    def _sql(self, sql: str, params: Any) -> str:
        return sql if self._qmark or params is None else _format_style(sql)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Cursor:
        if params is None:
            self.raw.execute(sql)
        else:
            self.raw.execute(self._sql(sql, params), params)
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.raw.executemany(self._sql(sql, rows), rows)

    def insert_returning_ids(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[int]:
        """Run the INSERT ``sql`` once per row; the ids the rows got, in order (not SQLite: see row_writes)."""
        self.raw.executemany(_format_style(sql) + " RETURNING id", rows, returning=True)
        ids: list[int] = []
        while True:
            ids.append(int(self.raw.fetchone()[0]))
            if not self.raw.nextset():
                return ids

    @property
    def sqlite(self) -> bool:
        return self._qmark

    def fetchall(self) -> list[tuple]:
        return self.raw.fetchall()

    def fetchmany(self, size: int) -> list[tuple]:
        return self.raw.fetchmany(size)

    def fetchone(self) -> tuple | None:
        return self.raw.fetchone()

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.raw)

    def close(self) -> None:
        self.raw.close()


@lru_cache(maxsize=256)
def _format_style(sql: str) -> str:
    """``?`` placeholders as ``%s`` (a literal ``%`` doubled), for the drivers of the format style (psycopg)."""
    return re.sub(r"\?", "%s", sql.replace("%", "%%"))


def cursor_of(conn: Any) -> Cursor:
    """A Cursor in the transaction of the SQLAlchemy connection ``conn``."""
    return Cursor(conn.connection.dbapi_connection.cursor(), conn.dialect.name == "sqlite")


@contextmanager
def raw_cursor(engine: Engine) -> Iterator[Cursor]:
    """A Cursor on a pooled connection, for the reads every search or re-index makes."""
    raw = engine.raw_connection()
    try:
        cursor = Cursor(raw.cursor(), is_sqlite(engine))
        try:
            yield cursor
        finally:
            cursor.close()
    finally:
        raw.close()


def database_bytes(engine: Engine, metadata_url: str | None) -> int:
    """What a library's metadata takes outside its folder: a SQLite file a library file names, or its tables
    in a database server (0 for the SQLite file of a library folder, counted with the folder's files)."""
    if engine.dialect.name == "sqlite" and metadata_url is not None:
        database = metadata_url[len("sqlite:///") :].partition("?")[0]
        return sum(os.path.getsize(p) for p in (database, f"{database}-wal") if os.path.exists(p))
    if engine.dialect.name != "postgresql":
        return 0
    tables = ["items", "windows", "tags", "meta", "pending_vectors", "writers", "claims"]
    with raw_cursor(engine) as cursor:
        return int(cursor.execute("SELECT " + " + ".join("coalesce(pg_total_relation_size(to_regclass(?)), 0)"
                                                         for _ in tables), tables).fetchone()[0])


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
    """The first line of what the database said."""
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]
