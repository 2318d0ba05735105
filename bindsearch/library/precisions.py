"""Which precisions embedded a library's vectors, per modality (kept in ``meta``, shown by ``info``).

The precision is not part of the space's fingerprint (vectors of fp32 and bf16 agree to a cosine of
0.9999), so one library may hold vectors of both; this record says which runs made them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import Connection, select

from .schema import Meta, set_meta

KEY = "precisions"


def read_precisions(conn: Connection) -> dict[str, list[str]]:
    """{modality: [precision, ...]} in the order they were first used; {} where nothing was recorded."""
    return _parse(conn.execute(select(Meta.value).where(Meta.key == KEY)).scalar())


def _parse(stored: str | None) -> dict[str, list[str]]:
    if not stored:
        return {}
    try:
        value = json.loads(stored)
    except ValueError:
        return {}  # (a damaged record says nothing; the next run writes it anew)
    if not isinstance(value, dict):
        return {}
    return {str(m): [str(p) for p in ps] for m, ps in value.items() if isinstance(ps, list)}


def record_precision(conn: Connection, modalities: Iterable[str], precision: str) -> None:
    """Adds ``precision`` to each of ``modalities``' record (inside the caller's transaction)."""
    current = read_precisions(conn)
    changed = False
    for modality in modalities:
        used = current.setdefault(modality, [])
        if precision not in used:
            used.append(precision)
            changed = True
    if not changed:
        return
    set_meta(conn, KEY, json.dumps(current, sort_keys=True))
