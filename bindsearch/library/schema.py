"""The schema of a library's metadata (SQLite or PostgreSQL): items and their tags, time windows, key/value
metadata.

Vectors live in the vector files beside the database (``vector_store``): an embedded item or window
keeps the slot of its row there and the row's CRC-32.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Bump when the tables change, and add a step to MIGRATIONS in migrations.py.
SCHEMA_VERSION = 5

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_SKIPPED = "skipped"  # readable, but nothing of this modality in it (a video without sound)
STATUS_STALE = "stale"  # embedded by a tower the library's space no longer has: embedded again by the next index
UNKNOWN_DURATION = -1.0  # an audio or video item whose length its file does not tell (asked once)


class FsPath(TypeDecorator[str]):
    """A file path stored as the bytes the OS uses.

    File names need not be valid UTF-8 (Python carries the stray bytes as
    surrogates, which SQLite's TEXT refuses); bytes round-trip every name, and
    byte order keeps a folder's files in one contiguous range for prefix scans.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> bytes | None:
        return None if value is None else os.fsencode(value)

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else os.fsdecode(value)


# 64-bit integers (sizes, nanosecond times, CRC-32s past 2^31): SQLite's INTEGER is 64-bit already, and must
# stay the type of an AUTOINCREMENT key; PostgreSQL's INTEGER is 32-bit.
Int64 = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Library-wide facts: schema version, the space, per-modality index generations."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Item(Base):
    """One indexed (file, modality) pair, embedded or failed."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("path", "modality", name="uq_items_path_modality"),
        Index("ix_items_content_hash", "content_hash"),
        Index("ix_items_modality_status", "modality", "status"),
        # AUTOINCREMENT: ids are never reused, so a stale FAISS file can never
        # point a deleted item's id at a new file.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Int64, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(FsPath)
    modality: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(Int64)
    mtime_ns: Mapped[int] = mapped_column(Int64)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    indexed_at: Mapped[float] = mapped_column(Float)
    # Time windows of a long audio or video item: how many it has (0: too short for any).
    # NULL: not cut into windows under the library's current window settings (yet).
    window_count: Mapped[int | None] = mapped_column(Int64, nullable=True)
    # Length in seconds of an audio or video item: NULL for the other modalities and until it is
    # read, UNKNOWN_DURATION when the file's headers do not tell it.
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    # An embedded item's row in its modality's vector file, and that row's CRC-32: NULL for the others.
    slot: Mapped[int | None] = mapped_column(Int64, nullable=True)
    crc: Mapped[int | None] = mapped_column(Int64, nullable=True)


class Window(Base):
    """One time window of a long audio or video item, and where its unit vector is stored.

    Window ids are their own sequence: each modality's windows have a vector file
    and an index of their own, beside those of whole items.
    """

    __tablename__ = "windows"
    __table_args__ = (Index("ix_windows_item_id", "item_id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Int64, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(Int64, ForeignKey("items.id", ondelete="CASCADE"))
    start: Mapped[float] = mapped_column(Float)  # seconds from the start of the file
    end: Mapped[float] = mapped_column(Float)
    slot: Mapped[int] = mapped_column(Int64)  # its row in the modality's windows vector file
    crc: Mapped[int] = mapped_column(Int64)


class Tag(Base):
    """A free-form label on an item (``bindsearch tag``, ``index --auto-tag``); search filters on them."""

    __tablename__ = "tags"
    __table_args__ = (Index("ix_tags_tag", "tag"),)

    item_id: Mapped[int] = mapped_column(Int64, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(Text, primary_key=True)


class PendingVector(Base):
    """A committed change not yet made in a vector store that lives elsewhere (Milvus): a vector to write
    (``vector`` its little-endian float32 bytes) or, with ``vector`` NULL, one to delete. Written in the
    transaction of the rows it belongs to, made in the store after that commits, then deleted: a process
    killed in between leaves it here, and the next writer makes it (``outbox``)."""

    __tablename__ = "pending_vectors"
    __table_args__ = ({"sqlite_autoincrement": True},)

    seq: Mapped[int] = mapped_column(Int64, primary_key=True, autoincrement=True)
    index: Mapped[str] = mapped_column(String(64))  # index_name: "image", "audio.windows"
    vector_id: Mapped[int] = mapped_column(Int64)  # an item id, or a window id
    vector: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Writer(Base):
    """An index run writing a library that several runs may write at once: its heartbeat keeps its claims."""

    __tablename__ = "writers"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)  # host:pid:random
    heartbeat: Mapped[float] = mapped_column(Float)  # unix time of its last sign of life


class Claim(Base):
    """A file an index run is reading and embedding: no other run takes it while its owner's heartbeat is
    fresh (``indexer.claims``)."""

    __tablename__ = "claims"

    path: Mapped[str] = mapped_column(FsPath, primary_key=True)
    modality: Mapped[str] = mapped_column(String(16), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))


# Tables added by schema 5, for libraries written by several processes or machines at once.
SHARED_WRITE_TABLES = (PendingVector.__table__, Writer.__table__, Claim.__table__)


def _upsert(conn: Any) -> Any:
    """An INSERT into the meta table of the connection's dialect (both take ON CONFLICT)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(Meta.__table__)


def set_meta(conn: Any, key: str, value: str) -> None:
    """Set the meta table's ``key`` to ``value`` (a row made if new), inside the caller's transaction. One
    statement: two writers making the row at once (PostgreSQL) do not collide."""
    insert = _upsert(conn).values(key=key, value=value)
    conn.execute(insert.on_conflict_do_update(index_elements=["key"], set_={"value": insert.excluded.value}))


def bump_counter(conn: Any, key: str) -> int:
    """Add one to the counter ``key`` of the meta table (created at 1), inside the caller's transaction;
    the new value. One statement, so that writers committing at once (PostgreSQL) each count."""
    from sqlalchemy import select, text

    insert = _upsert(conn).values(key=key, value="1")
    conn.execute(insert.on_conflict_do_update(
        index_elements=["key"], set_={"value": text("CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT)")}))
    return int(conn.execute(select(Meta.value).where(Meta.key == key)).scalar())
