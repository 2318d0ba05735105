"""Query terms, and the grammar that writes several of them on one line.

A query is a weighted sum of terms of any modality::

    "2:a dog" + ./beach.jpg - "a leash"        (the expression form)
    [W:][MODALITY:]VALUE                       (one term)

- ``W:`` is a weight, a number then a colon (``2:``, ``0.5:``, ``-1:``); a
  ``-`` before the term negates it, a ``+`` adds it (terms side by side add up).
- ``MODALITY:`` forces a modality (``text:``, ``image:``, ``audio:``, ``video:``,
  ``depth:``, ``thermal:``, ``imu:``), or ``like:`` names an indexed item by path
  or id, whose stored vector is used.
- Otherwise a value that names an existing file is that file, of the modality
  its name tells; anything else is text.

Inside one argument, `` + `` and `` - `` (with spaces around them) separate
terms too, so ``"a dog + beach.jpg"`` is two terms. A text that needs a leading
number and colon of its own is written with a weight: ``1:3:10 to Yuma``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..modality import BUILTIN_MODALITIES, Modality, is_modality_name, modality_from_path


@dataclass(frozen=True)
class Like:
    """An indexed item, by id or by path: its stored vector is the term, and it stays out of the results."""

    item: int | str


@dataclass(frozen=True)
class QueryTerm:
    """One part of a query: a value of some modality and its weight (negative to subtract).

    ``value`` is a string for text, a file path for the other modalities (a
    PIL image also works for images), a ready vector (numpy array), or a
    ``Like`` (then ``modality`` is None: the item's own modality applies).
    """

    modality: Modality | None
    value: Any
    weight: float = 1.0

    def __post_init__(self) -> None:
        # Vectors are float32: a weight that overflows it (1e40) would make the query NaN.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                fits = bool(np.isfinite(np.float32(self.weight)))
            except (TypeError, ValueError):
                fits = False
        if isinstance(self.weight, bool) or not fits:
            raise UsageError(f"query term weight {self.weight!r} is not a finite number a 32-bit float can hold")

    @classmethod
    def text(cls, text: str, weight: float = 1.0) -> QueryTerm:
        if not text.strip():
            raise UsageError(f"query term {text!r} is empty: give some text")
        return cls(Modality.TEXT, text, weight)

    @classmethod
    def file(cls, modality: Modality | str, path: str | os.PathLike[str], weight: float = 1.0) -> QueryTerm:
        return cls(Modality.parse(modality), Path(path), weight)

    @classmethod
    def like(cls, item: int | str | os.PathLike[str], weight: float = 1.0) -> QueryTerm:
        """An indexed item's stored vector (no embedding); the item is left out of its own results."""
        return cls(None, Like(item if isinstance(item, int) else os.fspath(item)), weight)


_WEIGHT = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)):(.*)", re.DOTALL)
_OPERATOR = re.compile(r"\s+([+-])\s+")
_PREFIXES = {m.value for m in BUILTIN_MODALITIES} | {"like"}

IsFile = Callable[[str], bool]
_FILE_NAME = re.compile(r"\S+\.[A-Za-z0-9]{1,5}")


def _names_file(value: str) -> bool:
    """True for a value written as a file name: no white space, an extension ("run.csv", "a/b.npy")."""
    return _FILE_NAME.fullmatch(value) is not None


def split_weight(value: str, is_file: IsFile = os.path.isfile) -> tuple[float, str]:
    """``"2:a dog"`` -> (2.0, "a dog"); a value with no weight, or naming an existing file, has weight 1."""
    if is_file(value):
        return 1.0, value
    match = _WEIGHT.fullmatch(value)
    if match is None:
        return 1.0, value
    return float(match.group(1)), match.group(2)


def parse_term(token: str, sign: float = 1.0, is_file: IsFile = os.path.isfile) -> QueryTerm:
    """One term of the grammar (see the module docstring), its weight multiplied by ``sign``."""
    weight, rest = split_weight(token, is_file)
    prefix, colon, value = rest.partition(":")
    # A built-in modality's name, or any other modality name before a file name ("vibration:run.csv", a
    # modality a bound space adds; a missing file is then said as one): "note: buy milk" stays a text.
    named = prefix.lower() in _PREFIXES or (is_modality_name(prefix) and (is_file(value) or _names_file(value)))
    if colon and not is_file(rest) and named:
        kind = prefix.lower()
        if not value:
            raise UsageError(f"query term {token!r}: nothing after {prefix}:")
        if kind == "like":
            return QueryTerm.like(value, sign * weight)  # an id or a path: the library tells which
        if kind == Modality.TEXT.value:
            return QueryTerm.text(value, sign * weight)
        return QueryTerm.file(kind, value, sign * weight)
    if not rest.strip():
        raise UsageError(f"query term {token!r} is empty")
    if is_file(rest):
        modality = modality_from_path(rest)
        if modality is None:
            raise UsageError(
                f"cannot tell the modality of {rest} from its name: write image:{rest}, audio:{rest}, ..."
            )
        return QueryTerm.file(modality, rest, sign * weight)
    return QueryTerm.text(rest, sign * weight)


def parse_expression(tokens: Sequence[str], is_file: IsFile = os.path.isfile) -> list[QueryTerm]:
    """Terms joined by ``+`` and ``-`` (separate arguments, or `` + `` / `` - `` inside one) into QueryTerms."""
    pieces: list[str] = []
    for token in tokens:
        if token in ("+", "-") or is_file(token):
            pieces.append(token)
        else:
            pieces += [p for p in _OPERATOR.split(token) if p != ""]
    terms: list[QueryTerm] = []
    sign: float | None = None
    for piece in pieces:
        if piece in ("+", "-"):
            if sign is not None:
                raise UsageError(f"two operators in a row in the query ({'+' if sign > 0 else '-'} {piece})")
            sign = 1.0 if piece == "+" else -1.0
            continue
        terms.append(parse_term(piece, 1.0 if sign is None else sign, is_file))
        sign = None
    if sign is not None:
        raise UsageError("the query ends with an operator: a term must follow + or -")
    return terms
