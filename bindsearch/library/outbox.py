"""Committing to two stores: the metadata database and a vector store elsewhere (Milvus), with nothing lost
and nothing doubled whatever is killed when.

A commit writes its rows and, in the same transaction, one ``pending_vectors`` row per vector to write
(its bytes) or delete. After the commit, ``flush`` makes those changes in the vector store, oldest first,
then deletes the rows it made. A process killed before the commit leaves nothing; killed after it, its
rows wait in the database and the next flush (any writer's, on any machine) makes them: writing a vector
under its id, or deleting an id, twice leaves what once does. Flushes take turns (a row lock on the meta
table), so that two of them never interleave one id's write and delete.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Engine, delete, select, text

from ..modality import Modality
from .records import index_name
from .schema import PendingVector, set_meta

Key = tuple[Modality, bool]  # (modality, windows?)
_FLUSH_TURN = "outbox_turn"  # the meta row a flush locks: one flush at a time per library
_ROWS_PER_STEP = 4096  # pending rows made per step: bounded memory, whatever a killed run left


def stage(conn: Any, key: Key, removed: np.ndarray, ids: np.ndarray, vectors: np.ndarray) -> None:
    """Record one index's changes of a commit, inside its transaction: deletions first, then writes."""
    name = index_name(*key)
    rows = [{"index": name, "vector_id": int(i), "vector": None} for i in np.asarray(removed).tolist()]
    data = np.ascontiguousarray(vectors, dtype="<f4")
    rows += [{"index": name, "vector_id": int(i), "vector": data[n].tobytes()}
             for n, i in enumerate(np.asarray(ids).tolist())]
    if rows:
        conn.execute(PendingVector.__table__.insert(), rows)


Apply = Callable[[str, np.ndarray, np.ndarray, np.ndarray], None]
"""(index name, ids to delete, ids to write, their vectors (n, dim)) -> None: the change made in the store."""


def flush(engine: Engine, dim: int, apply: Apply) -> int:
    """Make every pending change in the vector store, oldest first; how many were made."""
    made = 0
    while True:
        with engine.begin() as conn:
            _take_turn(conn)
            rows = conn.execute(select(PendingVector.seq, PendingVector.index, PendingVector.vector_id,
                                       PendingVector.vector).order_by(PendingVector.seq)
                                .limit(_ROWS_PER_STEP)).all()
            if not rows:
                return made
            for name, removed, ids, vectors in _runs(rows, dim):
                apply(name, removed, ids, vectors)
            conn.execute(delete(PendingVector).where(PendingVector.seq <= rows[-1].seq))
        made += len(rows)


def pending(engine: Engine) -> int:
    """How many changes wait to be made in the vector store."""
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {PendingVector.__tablename__}")).scalar())


def pending_vectors(engine: Engine, name: str, ids: Sequence[int], dim: int) -> dict[int, np.ndarray]:
    """The latest pending vector of each of ``ids`` in index ``name`` that has one still to be written (a
    reader finds there what a killed writer committed and did not make in the store yet)."""
    found: dict[int, np.ndarray] = {}
    wanted = [int(i) for i in ids]
    with engine.connect() as conn:
        for begin in range(0, len(wanted), 500):
            chunk = wanted[begin : begin + 500]
            rows = conn.execute(select(PendingVector.vector_id, PendingVector.vector)
                                .where(PendingVector.index == name, PendingVector.vector_id.in_(chunk))
                                .order_by(PendingVector.seq)).all()
            for vector_id, data in rows:
                if data is None:
                    found.pop(vector_id, None)
                else:
                    found[vector_id] = np.frombuffer(bytes(data), dtype="<f4").reshape(dim).astype(np.float32)
    return found


def _take_turn(conn: Any) -> None:
    """Lock this library's flush row until the transaction ends (made on first use)."""
    if not conn.execute(text("UPDATE meta SET value = value WHERE key = :key"), {"key": _FLUSH_TURN}).rowcount:
        set_meta(conn, _FLUSH_TURN, "")


def _runs(rows: Sequence[Any], dim: int) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """Pending rows as runs of one index each, in order: (name, ids deleted, ids written, their vectors),
    a run cut where an id would be written after being deleted in it (or deleted after being written), so
    that each run's deletions can go first."""
    runs: list[tuple[str, list[int], dict[int, bytes]]] = []
    for _, name, vector_id, data in rows:
        if not runs or runs[-1][0] != name or (data is None and vector_id in runs[-1][2]):
            runs.append((name, [], {}))
        removed, written = runs[-1][1], runs[-1][2]
        if data is None:
            removed.append(vector_id)
        else:
            written[vector_id] = bytes(data)  # (the same id twice in a run: its last vector)
    out = []
    for name, removed, written in runs:
        ids = np.fromiter(written, np.int64, len(written))
        vectors = (np.frombuffer(b"".join(written.values()), dtype="<f4").reshape(-1, dim).astype(np.float32)
                   if written else np.zeros((0, dim), np.float32))
        out.append((name, np.array(removed, dtype=np.int64), ids, vectors))
    return out
