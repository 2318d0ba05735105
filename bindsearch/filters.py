"""Filters on item metadata: where a file lies, its size, age, duration and tags.

A filtered search ranks only the items that pass (the FAISS search itself is
restricted to them), so asking for k results gets k whenever k items pass.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from .errors import UsageError

_GLOB_CHARS = re.compile(r"[*?\[]")
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b?)\s*", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# The library stores sizes and modification times (in nanoseconds) as SQLite's 64-bit integers.
MAX_SIZE = (1 << 63) - 1
# Modification times in int64 nanoseconds reach from 1677-09-21 to 2262-04-11: a date outside these
# bounds keeps or drops the same files as the bound does.
_EARLIEST = datetime(1677, 9, 22)
_LATEST = datetime(2262, 4, 10)


@dataclass(frozen=True)
class Filters:
    """What an item must be to be searched; every field left at its default lets everything through.

    - ``paths``: glob patterns or paths, any of which may match. A plain path
      matches that file and everything under that folder; a pattern with
      ``*``, ``?`` or ``[`` is matched against the file name when it holds no
      ``/`` (``*.jpg``), else against the whole path (``*/2023/*``, where a
      ``*`` also matches ``/``). Relative paths and patterns that start with a
      folder name are taken from the current folder.
    - ``tags``: the item must carry every one.
    - ``min_size``/``max_size`` in bytes, ``modified_after``/``modified_before``
      in seconds since the epoch, ``min_duration``/``max_duration`` in seconds
      (audio and video only: anything else, or a file whose length is unknown,
      fails a duration filter). Bounds are inclusive.
    """

    paths: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    min_size: int | None = None
    max_size: int | None = None
    modified_after: float | None = None
    modified_before: float | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    # Items left out whatever else they are (a --like query's own item): set by the search itself.
    exclude_ids: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple(self.paths))
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "exclude_ids", frozenset(self.exclude_ids))
        for value, flag in ((self.min_size, "--min-size"), (self.max_size, "--max-size")):
            if value is not None:
                check_size(value, flag)
        for value, flag in ((self.modified_after, "--after"), (self.modified_before, "--before")):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or math.isnan(value)):
                raise UsageError(f"{flag}: a modification date is a number of seconds since 1970, got {value!r}")
        for value, flag in ((self.min_duration, "--min-duration"), (self.max_duration, "--max-duration")):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not 0 <= value < math.inf):
                raise UsageError(f"{flag}: a duration is a number of seconds, at least 0 (got {value!r})")
        for low, high, what in ((self.min_size, self.max_size, "size"),
                                (self.modified_after, self.modified_before, "modification date"),
                                (self.min_duration, self.max_duration, "duration")):
            if low is not None and high is not None and low > high:
                raise UsageError(f"the {what} filter excludes everything: its lower bound is above its upper bound")

    @property
    def on_metadata(self) -> bool:
        """Whether any filter other than the excluded ids is set."""
        return replace(self, exclude_ids=frozenset()) != Filters()

    def excluding(self, ids: Sequence[int]) -> Filters:
        return replace(self, exclude_ids=self.exclude_ids | frozenset(int(i) for i in ids))


def path_patterns(patterns: Sequence[str]) -> list[tuple[str, str]]:
    """Each pattern as ("glob", absolute pattern), ("name", pattern) or ("under", absolute path)."""
    out = []
    for pattern in patterns:
        if not pattern:
            raise UsageError("an empty --path pattern matches nothing")
        expanded = os.path.expanduser(pattern)
        if _GLOB_CHARS.search(expanded):
            if os.sep not in expanded:
                out.append(("name", expanded))
            elif _GLOB_CHARS.match(expanded) or os.path.isabs(expanded):
                out.append(("glob", expanded))  # "*/2023/*.jpg": anywhere (a * also matches a /)
            else:
                out.append(("glob", os.path.join(os.path.abspath(os.path.dirname(expanded)),
                                                 os.path.basename(expanded))))
        else:
            out.append(("under", os.path.abspath(expanded).rstrip(os.sep) or os.sep))
    return out


def path_matches(path: str, patterns: Sequence[tuple[str, str]]) -> bool:
    """Whether ``path`` (absolute) passes any of ``path_patterns(...)``."""
    for kind, pattern in patterns:
        if kind == "under":
            if path == pattern or path.startswith(pattern.rstrip(os.sep) + os.sep):
                return True
        elif kind == "name":
            if fnmatch.fnmatchcase(os.path.basename(path), pattern):
                return True
        elif fnmatch.fnmatchcase(path, pattern):
            return True
    return False


def parse_size(text: str) -> int:
    """``"500"``, ``"20k"``, ``"1.5MB"``, ``"2GiB"`` to bytes (k, M, G, T are powers of 1024)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise UsageError(f"not a size: {text!r} (write a number of bytes, or with a unit: 20k, 1.5MB, 2GiB)")
    number, unit = match.group(1), _SIZE_UNITS[match.group(2).lower()]
    whole, _, fraction = number.partition(".")
    # Whole bytes from the digits themselves: a float would lose them past 2**53, or overflow.
    size = int(whole or "0") * unit + int(int(fraction or "0") * unit // 10 ** len(fraction))
    if size > MAX_SIZE:
        raise UsageError(f"size {text!r} is larger than any file can be (at most {MAX_SIZE} bytes, 8 EiB)")
    return size


def check_size(value: object, flag: str) -> None:
    """UsageError unless ``value`` is a whole number of bytes a library can compare with (0 to 2**63 - 1)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{flag}: a size is a whole number of bytes, got {value!r}")
    if not 0 <= value <= MAX_SIZE:
        raise UsageError(f"{flag}: a size is between 0 and {MAX_SIZE} bytes (8 EiB), got {value}")


def parse_date(text: str) -> float:
    """An ISO date or date and time (``2024-05-01``, ``2024-05-01T13:30``), local time, to epoch seconds.

    Any date from year 1 to 9999 is taken; one beyond the span a file's modification time can have
    (1677 to 2262) counts as that span's end, which lets through the same files."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"not a date: {text!r} (write it as 2024-05-01 or 2024-05-01T13:30)") from None
    earliest, latest = _EARLIEST, _LATEST
    if moment.tzinfo is not None:
        earliest, latest = earliest.replace(tzinfo=timezone.utc), latest.replace(tzinfo=timezone.utc)
    return min(max(moment, earliest), latest).timestamp()
