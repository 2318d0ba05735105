"""Tags on items: free-form labels that searches filter on, kept across re-embedding and moves."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, func, literal, or_, select

from ..errors import UsageError
from .database import cursor_of
from .schema import Item, Tag
from .selection import under


@dataclass(frozen=True)
class TaggedItem:
    """One item and its tags, after a ``tag`` command."""

    path: str
    modality: str
    tags: list[str] = field(default_factory=list)


def check_tags(tags: Sequence[str]) -> list[str]:
    """Tags stripped of surrounding space; UsageError for an empty one."""
    out = []
    for tag in tags:
        clean = tag.strip()
        if not clean:
            raise UsageError("a tag cannot be empty")
        if clean not in out:
            out.append(clean)
    return out


def items_at(conn: Connection, paths: Sequence[str]) -> list[tuple[int, str, str]]:
    """(id, path, modality) of every item whose path is one of ``paths`` or lies under one (a folder)."""
    found: dict[int, tuple[int, str, str]] = {}
    for given in paths:
        if not os.fspath(given):
            raise UsageError("an empty path names no file or folder (write . for the current folder)")
        root = os.path.abspath(os.fspath(given))
        exact, start, stop = under(root)
        path_column = Item.__table__.c.path  # raw bytes, as stored
        rows = conn.execute(
            select(Item.id, Item.path, Item.modality)
            .where(or_(path_column == exact, (path_column >= start) & (path_column < stop)))
            .order_by(path_column, Item.modality)
        ).all()
        if not rows:
            raise UsageError(f"not in the library: {given} (index it first)")
        for item_id, path, modality in rows:
            found[item_id] = (item_id, path, modality)
    return list(found.values())


def unknown_tags(conn: Connection, tags: Sequence[str]) -> list[str]:
    """Those of ``tags`` that no item carries."""
    wanted = list(dict.fromkeys(tags))
    known = set(conn.execute(select(Tag.tag).where(Tag.tag.in_(wanted)).distinct()).scalars())
    return [t for t in wanted if t not in known]


def change_tags(conn: Connection, item_ids: Sequence[int], add: Sequence[str], remove: Sequence[str]) -> None:
    if add:
        conn.execute(_insert_new_tags(conn), [{"item_id": i, "tag": t} for i in item_ids for t in add])
    if remove:
        for begin in range(0, len(item_ids), 500):
            chunk = list(item_ids[begin : begin + 500])
            conn.execute(delete(Tag).where(Tag.item_id.in_(chunk), Tag.tag.in_(list(remove))))


def copy_tags(conn: Connection, from_id: int, to_id: int) -> None:
    """Give item ``to_id`` every tag of item ``from_id`` (an item that takes another's place)."""
    conn.execute(_insert_new_tags(conn).from_select(
        ["item_id", "tag"], select(literal(to_id), Tag.tag).where(Tag.item_id == from_id)))


def tags_of(conn: Connection, item_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """The tags of each of the given items that has any, sorted."""
    out: dict[int, list[str]] = {}
    ids = [int(i) for i in item_ids]
    cursor = cursor_of(conn)  # (every search asks this: no SQL compiled per call)
    for begin in range(0, len(ids), 500):
        chunk = ids[begin : begin + 500]
        cursor.execute(f"SELECT item_id, tag FROM {Tag.__tablename__} WHERE item_id IN ({','.join('?' * len(chunk))})",
                       chunk)
        for item_id, tag in cursor.fetchall():
            out.setdefault(item_id, []).append(tag)
    cursor.close()
    return {i: tuple(sorted(t)) for i, t in out.items()}


def _insert_new_tags(conn: Connection) -> Any:
    """An INSERT into the tags table that leaves a tag an item has already as it is."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(Tag.__table__).on_conflict_do_nothing()


def tag_counts(conn: Connection) -> dict[str, int]:
    """How many items carry each tag."""
    rows = conn.execute(select(Tag.tag, func.count()).group_by(Tag.tag).order_by(Tag.tag))
    return {tag: n for tag, n in rows}
