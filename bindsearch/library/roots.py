"""The folders (and single files) a library was asked to index: what a server lets a query name by path.

A query term that names a file on the machine holding the library is read by that machine, so a
server reads only files that lie under one of these roots (after symbolic links are followed), or
that the library holds as items.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, select

from .schema import STATUS_OK, Item, Meta, set_meta

ROOTS_KEY = "indexed_roots"


def record_roots(conn: Connection, roots: Sequence[str]) -> None:
    """Add absolute ``roots`` to the library's list, inside the caller's transaction (a root under one
    already listed adds nothing)."""
    known = _stored(conn)
    changed = False
    for root in roots:
        root = os.path.abspath(root)
        if not any(lies_under(root, k) for k in known):
            known = [k for k in known if not lies_under(k, root)] + [root]
            changed = True
    if not changed:
        return
    set_meta(conn, ROOTS_KEY, json.dumps(sorted(known)))


def indexed_roots(engine: Engine) -> list[str]:
    """The roots recorded so far (read afresh: another process may have indexed more)."""
    with engine.connect() as conn:
        return _stored(conn)


def may_read(engine: Engine, path: str) -> bool:
    """Whether ``path`` (absolute) lies under an indexed root, symbolic links followed on both sides, or is
    the path of one of the library's items (libraries indexed before roots were recorded)."""
    real = os.path.realpath(path)
    if any(lies_under(real, os.path.realpath(root)) for root in indexed_roots(engine)):
        return True
    with engine.connect() as conn:
        row = conn.execute(select(Item.id).where(Item.path.in_([path, real]), Item.status == STATUS_OK).limit(1))
        return row.first() is not None


def lies_under(path: str, root: str) -> bool:
    """``path`` is ``root`` or inside it (both absolute and normal)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _stored(conn: Connection) -> list[str]:
    value = conn.execute(select(Meta.value).where(Meta.key == ROOTS_KEY)).scalar()
    return list(json.loads(value)) if value else []
