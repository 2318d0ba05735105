"""The pairs a tower is bound on: ``PAIRS.csv`` with a header ``image,other``, paths relative to it."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..loaders.common import os_reason
from ..regular_files import read_small_file
from ..text_encoding import decode_text

MAX_PAIRS_FILE_BYTES = 256 << 20  # about two million rows of two paths
# More bad rows than this share stop a run before training: the data are likely not what was meant.
MAX_BAD_SHARE = 0.10


@dataclass(frozen=True)
class Pair:
    """One row of the pairs file: its number (the header is row 1) and the two files' absolute paths."""

    row: int
    image: str
    other: str


@dataclass(frozen=True)
class BadRow:
    """A row left out, with the file at fault and why (one line)."""

    row: int
    path: str
    reason: str


def read_pairs(path: str | os.PathLike[str]) -> list[Pair]:
    """The pairs of a CSV file; UsageError for a file that is missing, not text, or without the header.

    Blank rows are skipped; a row with an empty cell, or more than two, is an error naming the row.
    """
    path = Path(path)
    try:
        data = read_small_file(path, MAX_PAIRS_FILE_BYTES)
    except OSError as exc:
        raise UsageError(f"cannot read pairs file {path}: {os_reason(exc)}") from None
    decoded = decode_text(data)
    if decoded is None:
        raise UsageError(f"pairs file {path} is not a text file (binary content)")
    rows = list(csv.reader(io.StringIO(decoded[0].lstrip("\ufeff"))))
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if header != ["image", "other"]:
        raise UsageError(f"pairs file {path} must start with the header line 'image,other' "
                         f"(found {','.join(rows[0]) if rows else 'nothing'!r})")
    base = path.resolve().parent
    out = []
    for number, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != 2 or not all(cell.strip() for cell in cells):
            raise UsageError(f"pairs file {path}, row {number}: expected two paths (image,other), got {cells!r}")
        image, other = (os.path.join(base, os.path.expanduser(cell.strip())) for cell in cells)
        out.append(Pair(number, os.path.normpath(image), os.path.normpath(other)))
    return out


def unreadable(pair: Pair) -> BadRow | None:
    """The first of a pair's files that cannot be opened, and why; None when both can."""
    for path in (pair.image, pair.other):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            return BadRow(pair.row, path, os_reason(exc))
        if not os.path.isfile(path):
            return BadRow(pair.row, path, "not a regular file")
    return None


def check_bad_share(bad: list[BadRow] | int, total: int, pairs_file: str,
                    tell: Callable[[BadRow], None] | None = None) -> None:
    """UsageError when more than MAX_BAD_SHARE of the rows are bad (before any training); ``tell`` hears each
    bad row first, when they are too many."""
    if isinstance(bad, list):
        rows, bad = bad, len(bad)
        if total and bad / total > MAX_BAD_SHARE and tell is not None:
            for row in rows:
                tell(row)
    if total and bad / total > MAX_BAD_SHARE:
        raise UsageError(f"{bad} of {total} pairs in {pairs_file} cannot be used (over "
                         f"{MAX_BAD_SHARE:.0%}): fix the files or the paths, then run again")
