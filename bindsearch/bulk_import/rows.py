"""Checking imported rows: pure functions over a chunk's columns, each giving the reasons rows are refused."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np

from ..modality import BUILTIN_MODALITIES, Modality

NOT_FINITE = "its vector is not finite (NaN or infinite values)"
ALL_ZERO = "its vector is all zero"
NO_PATH = "it has no path"
# What ``os.path.normpath`` would change in an absolute POSIX path: "//" (past a leading pair), a "." or ".."
# part, a trailing "/". Where it is absent, the path is its own abspath.
_POSIX = os.sep == "/" and os.altsep is None
_UNNORMAL = re.compile(r"(?<=.)//|/\.\.?(?:/|$)|./$|^///")
# How far from 1 the norm of a float32 unit vector can be after rounding (a few ulps of 1.0 over d terms).
_UNIT_TOLERANCE = 1e-6


def unit_rows(vectors: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """``vectors`` (n, d) scaled to unit length as float32, and why each row that cannot be is not.

    A row whose squared norm float32 cannot hold (values near 1e-20 or 1e20) has its norm taken in
    float64, so that it is scaled rather than refused; a refused row is left zero. A row of unit
    length already (to float32's precision, as ``export`` writes them) is kept bit for bit: scaling
    it again would only move its last bits.
    """
    if vectors.ndim != 2:
        raise ValueError(f"expected (n, d) vectors, got shape {vectors.shape}")
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    finite = np.isfinite(v).all(axis=1)
    if not finite.all():
        v = np.where(finite[:, None], v, np.float32(0))
    norms = np.sqrt(np.einsum("ij,ij->i", v, v)).astype(np.float64)
    odd = ~np.isfinite(norms) | (norms < 1e-15) | (norms > 1e15)
    if odd.any():
        wide = v[odd].astype(np.float64)
        norms[odd] = np.sqrt(np.einsum("ij,ij->i", wide, wide))
    usable = finite & (norms > 0)
    scale = np.zeros(len(v), dtype=np.float64)
    scale[usable] = 1.0 / norms[usable]
    scale[usable & (np.abs(norms - 1.0) <= _UNIT_TOLERANCE)] = 1.0  # (x * 1.0 is x, bit for bit)
    if odd.any():  # scaled in float64, where the factor itself may lie outside float32's range
        unit = (v.astype(np.float64) * scale[:, None]).astype(np.float32)
    elif (scale == 1.0).all():  # unit rows already (all of an exported file's): nothing to scale
        unit = v
    else:
        unit = v * scale.astype(np.float32)[:, None]
    reasons = {int(i): NOT_FINITE if not finite[i] else ALL_ZERO for i in np.flatnonzero(~usable)}
    return unit, reasons


def absolute_paths(paths: Sequence[str | None]) -> tuple[list[str], dict[int, str]]:
    """Each path made absolute (from the current folder), and why each that names no file is refused
    ("" for those)."""
    out: list[str] = []
    reasons: dict[int, str] = {}
    for i, path in enumerate(paths):
        if not path:
            reasons[i] = NO_PATH
            out.append("")
        elif "\0" in path:
            reasons[i] = "its path holds a NUL character, which no file name can"
            out.append("")
        elif _POSIX and path[0] == "/" and not _UNNORMAL.search(path):
            out.append(path)  # what abspath would give back (an exported file's paths all are), in 1/10 of the time
        else:
            out.append(os.path.abspath(path))
    return out, reasons


def parse_modalities(values: Sequence[str | None], embedded: frozenset[Modality],
                     space: str) -> tuple[list[Modality | None], dict[int, str]]:
    """Each row's modality, and why each that is unknown, or that ``space`` does not embed, is refused."""
    known = {m.value: m for m in (*BUILTIN_MODALITIES, *sorted(embedded - set(BUILTIN_MODALITIES)))}
    out: list[Modality | None] = []
    reasons: dict[int, str] = {}
    for i, value in enumerate(values):
        modality = known.get(value.strip().lower()) if value else None
        if modality is None:
            reasons[i] = "it has no modality" if not value else (
                f"unknown modality '{value}' (choose from: {', '.join(known)})")
        elif modality not in embedded:
            reasons[i] = f"space {space} does not embed {modality.value}"
            modality = None
        out.append(modality)
    return out, reasons


def last_of_each(keys: Sequence[tuple[str, Modality]], rows: Sequence[int]) -> tuple[list[int], dict[int, int]]:
    """Of ``rows`` (positions into ``keys``), those whose key comes no later in ``rows``; and for each
    one left out, the position of the row with its key that is kept."""
    kept: list[int] = []
    later: dict[tuple[str, Modality], int] = {}
    dropped: dict[int, int] = {}
    for i in reversed(rows):
        key = keys[i]
        if key in later:
            dropped[i] = later[key]
        else:
            later[key] = i
            kept.append(i)
    kept.reverse()
    return kept, dropped
