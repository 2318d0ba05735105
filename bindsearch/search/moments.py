"""Time windows of one file that overlap are one moment: one result with the union of their times."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar


class _Timed(Protocol):
    score: float
    item_id: int
    start: float | None
    end: float | None


T = TypeVar("T", bound=_Timed)


def merge_overlapping(candidates: Sequence[T]) -> list[T]:
    """The candidates (best first) with the windows of a file that overlap its best ones merged into them.

    Windows of 6 s every 2 s overlap, so one moment that matches shows as
    several windows (2:34-2:40, 2:36-2:42). Taken best first, a window that
    overlaps no moment of its file yet starts one; a window that overlaps a
    moment's own best window (and no other moment) widens that moment to the
    union of their times; any other window overlapping a moment is left out.
    So a moment spans its best window and the listed windows around it, and
    never grows along a whole file as more windows are read, and two moments
    of one file never overlap. A moment keeps its best window's score (and
    its other fields). Windows that only touch stay apart. Candidates without
    times (whole files) pass through. Out: by score, then item, then start.
    """
    moments: dict[int, list[_Moment[T]]] = {}
    whole: list[T] = []
    for c in candidates:
        if c.start is None or c.end is None:
            whole.append(c)
            continue
        own = moments.setdefault(c.item_id, [])
        touched = [m for m in own if _overlap(c.start, c.end, m.start, m.end)]
        if not touched:
            own.append(_Moment(c, c.start, c.end))
        elif len(touched) == 1 and _overlap(c.start, c.end, touched[0].best.start, touched[0].best.end):
            touched[0].start = min(touched[0].start, c.start)
            touched[0].end = max(touched[0].end, c.end)
    out = whole + [dataclasses.replace(m.best, start=m.start, end=m.end) for own in moments.values() for m in own]
    return sorted(out, key=lambda c: (-c.score, c.item_id, c.start or 0.0))


@dataclasses.dataclass
class _Moment(Generic[T]):
    best: T
    start: float
    end: float


def _overlap(start: float, end: float, other_start: float, other_end: float) -> bool:
    return start < other_end and other_start < end
