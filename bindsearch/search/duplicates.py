"""Near-identical items of a library: groups of look-alikes found with the FAISS index, best kept first.

Which item of a group is kept (listed first): the longest (audio, video),
then the largest file (for photos and recordings of one scene, more bytes
mostly means more pixels or less compression), then the oldest (the
original rather than a later copy), then the first path in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Connection, select

from ..errors import UsageError
from ..library.schema import STATUS_OK, Item
from ..modality import Modality

if TYPE_CHECKING:
    from ..library import LibraryStore as Library

# Query rows per FAISS range search: bounds the memory of the results of one call.
_ROWS_PER_SEARCH = 1024
# Cosines are computed in float32: an exact copy may score 0.9999999 against itself.
_SLACK = 1e-5


@dataclass(frozen=True)
class DuplicateItem:
    """One member of a group: ``score`` is its cosine with the group's kept item (1.0 for that one)."""

    id: int
    path: str
    size: int
    mtime: float
    duration: float | None
    score: float


@dataclass(frozen=True)
class DuplicateGroup:
    """Items of one modality whose vectors all have a cosine of at least the threshold with the first one,
    the one to keep."""

    modality: Modality
    items: list[DuplicateItem] = field(default_factory=list)


def find_duplicates(library: Library, conn: Connection, threshold: float = 0.95,
                    modalities: Sequence[Modality | str] | None = None) -> list[DuplicateGroup]:
    """Groups of near-identical items per modality, largest groups first, then by the kept item's path."""
    if not 0.0 < threshold <= 1.0:
        raise UsageError(f"the duplicate threshold is a cosine similarity above 0 and at most 1 (got {threshold})")
    wanted = [Modality.parse(m) for m in modalities] if modalities else library.modalities_with_vectors()
    groups: list[DuplicateGroup] = []
    for modality in dict.fromkeys(wanted):
        if library.vector_index(modality).size < 2:
            continue
        index = library.indexes.flat(modality)
        meta = _metadata(conn, modality)
        neighbours = close_pairs(index.index, index.size, threshold)
        order = sorted((i for i in meta if i in neighbours), key=lambda i: keep_rank(meta[i]))
        for members in group_by_keeper(order, neighbours):
            items = []
            for item_id, score in members:
                path, size, mtime_ns, duration = meta[item_id]
                items.append(DuplicateItem(item_id, path, size, mtime_ns / 1e9, duration, min(score, 1.0)))
            groups.append(DuplicateGroup(modality, items))
    groups.sort(key=lambda g: (-len(g.items), g.modality.value, g.items[0].path))
    return groups


def keep_rank(row: tuple[str, int, int, float | None]) -> tuple:
    """Sort key, best kept first: longest, largest, oldest, then by path. ``row``: (path, size, mtime_ns, duration)."""
    path, size, mtime_ns, duration = row
    return (-(duration if duration is not None and duration > 0 else 0.0), -size, mtime_ns, path)


def close_pairs(index: object, count: int, threshold: float) -> dict[int, dict[int, float]]:
    """For every id of a FAISS id-mapped inner-product index, the other ids whose cosine with it is at least
    ``threshold`` (and that cosine); ids with none are left out. One range search per block of rows."""
    import faiss

    flat = faiss.downcast_index(index.index)  # type: ignore[attr-defined]
    ids = faiss.vector_to_array(index.id_map).astype(np.int64)  # type: ignore[attr-defined]
    out: dict[int, dict[int, float]] = {}
    for begin in range(0, count, _ROWS_PER_SEARCH):
        queries = flat.reconstruct_n(begin, min(_ROWS_PER_SEARCH, count - begin))
        # Inner-product range search keeps scores above the radius.
        lims, scores, found = index.range_search(queries, threshold - _SLACK)  # type: ignore[attr-defined]
        for row in range(queries.shape[0]):
            me = int(ids[begin + row])
            for other, score in zip(found[lims[row]:lims[row + 1]], scores[lims[row]:lims[row + 1]]):
                if int(other) != me:
                    out.setdefault(me, {})[int(other)] = float(score)
    return out


def group_by_keeper(order: Sequence[int],
                    neighbours: Mapping[int, Mapping[int, float]]) -> list[list[tuple[int, float]]]:
    """Groups as (id, cosine with the keeper) lists, keeper first with 1.0.

    ``order`` is every id with neighbours, best kept first. Each id not yet in
    a group becomes a keeper, with those of its neighbours not in a group yet:
    every member is a near-copy of its keeper (not only of some other member),
    and each id is in one group at most. Members follow their keeper in ``order``.
    """
    position = {item: n for n, item in enumerate(order)}
    grouped: set[int] = set()
    groups = []
    for keeper in order:
        if keeper in grouped:
            continue
        members = sorted((i for i in neighbours.get(keeper, {}) if i not in grouped and i in position),
                         key=position.__getitem__)
        if not members:
            continue
        grouped.add(keeper)
        grouped.update(members)
        groups.append([(keeper, 1.0)] + [(i, neighbours[keeper][i]) for i in members])
    return groups


def _metadata(conn: Connection, modality: Modality) -> dict[int, tuple[str, int, int, float | None]]:
    rows = conn.execute(select(Item.id, Item.path, Item.size, Item.mtime_ns, Item.duration)
                        .where(Item.modality == modality.value, Item.status == STATUS_OK))
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}
