"""What the disk says of imported paths: the size and modification time an index run compares with.

An imported item whose file exists gets that file's stat, so that an index run of its folder finds
it unchanged and embeds nothing. One whose file is not on this machine (vectors made elsewhere) is
stored with a size and mtime of 0; index runs keep such an item rather than sweep it as deleted,
and only ``bindsearch remove`` takes it out.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..library.schema import STATUS_OK

NO_FILE_SIZE = 0
NO_FILE_MTIME_NS = 0
# The mtimes SQLite's signed 64-bit integers hold (the walk refuses files dated outside them too).
_MTIME_RANGE = (-(2**63), 2**63 - 1)


@dataclass
class DiskState:
    """Per path: size and mtime (NO_FILE_* where there is no file), whether a file is there, and why
    each path that names something other than a file is refused (keyed by position)."""

    sizes: list[int] = field(default_factory=list)
    mtimes_ns: list[int] = field(default_factory=list)
    present: list[bool] = field(default_factory=list)
    problems: dict[int, str] = field(default_factory=dict)


def stat_paths(paths: Sequence[str]) -> DiskState:
    """One ``os.stat`` per path (symbolic links followed, as the walk of an index run does)."""
    state = DiskState()
    for i, path in enumerate(paths):
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            st = None  # not here (or not reachable from here): stored without a file
        if st is not None and stat.S_ISDIR(st.st_mode):
            state.problems[i] = "it names a folder, not a file"
        elif st is not None and not stat.S_ISREG(st.st_mode):
            state.problems[i] = "it names something other than a regular file"
        usable = st is not None and i not in state.problems and _MTIME_RANGE[0] <= st.st_mtime_ns <= _MTIME_RANGE[1]
        state.sizes.append(st.st_size if usable else NO_FILE_SIZE)
        state.mtimes_ns.append(st.st_mtime_ns if usable else NO_FILE_MTIME_NS)
        state.present.append(usable)
    return state


def imported_without_file(size: int, mtime_ns: int, status: str) -> bool:
    """Whether an item is one imported while its file was not there: an index run must not sweep it."""
    return status == STATUS_OK and size == NO_FILE_SIZE and mtime_ns == NO_FILE_MTIME_NS
