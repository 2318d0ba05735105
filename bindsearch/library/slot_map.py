"""Where each stored vector of one index lies: its id, its slot (row) in the vector file, its row's CRC-32.

Read from SQLite once per process and then kept up to date by the commits the process makes, so that a
search can fetch the full vectors of a few hundred candidates without asking SQLite for their slots.
Two processes compare maps to see what another one changed (``changes``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np

from ..ann.idsets import in_sorted


class SlotMap:
    """Sorted distinct ids with their slots and CRC-32s (all (n,) int64)."""

    def __init__(self, ids: np.ndarray | None = None, slots: np.ndarray | None = None,
                 crcs: np.ndarray | None = None) -> None:
        ids = np.zeros(0, np.int64) if ids is None else np.asarray(ids, dtype=np.int64).reshape(-1)
        slots = np.zeros(0, np.int64) if slots is None else np.asarray(slots, dtype=np.int64).reshape(-1)
        crcs = np.zeros(0, np.int64) if crcs is None else np.asarray(crcs, dtype=np.int64).reshape(-1)
        if not ids.shape == slots.shape == crcs.shape:
            raise ValueError(f"{ids.size} ids, {slots.size} slots and {crcs.size} checksums")
        if ids.size > 1 and not np.all(ids[1:] > ids[:-1]):
            order = np.argsort(ids, kind="stable")
            ids, slots, crcs = ids[order], slots[order], crcs[order]
            if np.any(ids[1:] == ids[:-1]):
                raise ValueError("an id appears twice in a slot map")
        self.ids, self.slots, self.crcs = ids, slots, crcs

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, int, int]]) -> SlotMap:
        """From (id, slot, crc) rows as SQLite returns them (a cursor: read straight into one array, with no list
        of a million tuples in between)."""
        table = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64).reshape(-1, 3)
        return cls(table[:, 0], table[:, 1], table[:, 2])

    @property
    def size(self) -> int:
        return int(self.ids.size)

    def slots_of(self, ids: np.ndarray) -> np.ndarray:
        """The slot of each id, in the order given; KeyError naming one that is not in the map."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not self.ids.size:
            if ids.size:
                raise KeyError(f"id {int(ids[0])} has no stored vector")
            return np.zeros(0, np.int64)
        at = np.minimum(np.searchsorted(self.ids, ids), self.ids.size - 1)
        missing = self.ids[at] != ids
        if missing.any():
            raise KeyError(f"id {int(ids[missing][0])} has no stored vector")
        return self.slots[at]

    def crcs_of(self, ids: np.ndarray) -> np.ndarray:
        """The CRC-32 of each id's row, -1 for an id not in the map."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not self.ids.size:
            return np.full(ids.shape, -1, np.int64)
        at = np.minimum(np.searchsorted(self.ids, ids), self.ids.size - 1)
        return np.where(self.ids[at] == ids, self.crcs[at], -1)

    def put(self, ids: np.ndarray, slots: np.ndarray, crcs: np.ndarray) -> None:
        """Record new rows for these ids (new ids, or new vectors of ids already here)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not ids.size:
            return
        self.drop(ids)
        merged = SlotMap(np.concatenate([self.ids, ids]), np.concatenate([self.slots, slots]),
                         np.concatenate([self.crcs, crcs]))
        self.ids, self.slots, self.crcs = merged.ids, merged.slots, merged.crcs

    def assign(self, other: SlotMap) -> None:
        """Take ``other``'s contents, keeping this object: the indexes' fetch callbacks hold it."""
        self.ids, self.slots, self.crcs = other.ids, other.slots, other.crcs

    def drop(self, ids: np.ndarray) -> None:
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        if ids.size and self.ids.size:
            keep = ~in_sorted(self.ids, ids)
            if not keep.all():
                self.ids, self.slots, self.crcs = self.ids[keep], self.slots[keep], self.crcs[keep]

    def changes(self, newer: SlotMap) -> tuple[np.ndarray, np.ndarray]:
        """What an index of this map's vectors must do to hold ``newer``'s: (ids gone, ids new or whose
        vector changed), sorted. A row moved with the same bytes (the same CRC-32) is no change."""
        gone = self.ids[~in_sorted(self.ids, newer.ids)]
        changed = newer.ids[newer.crcs != self.crcs_of(newer.ids)]
        return gone, changed

    def spread(self, size: int) -> np.ndarray:
        """Up to ``size`` ids spread evenly over the map: a deterministic sample."""
        from ..ann.topk import spread

        return self.ids[spread(self.ids.size, size)]
