"""Moving a library to a space bound from its own: only the modalities whose tower changed are embedded again.

A space that ``bindsearch bind`` extends keeps the vectors of every modality
whose tower it leaves alone (their ``modality_fingerprint`` is the same), so a
library of the base can take it: the items of a changed modality (a
fine-tuned audio tower, say) lose their vectors and are marked stale, which
the next ``index`` embeds again; images and the rest stay as they are; tags
stay on every item. Items are marked first and the space recorded after, so
that a run killed in between leaves stale items under the old space (embedded
again with the old towers), never old vectors under the new one.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from ..modality import Modality
from ..spaces import Space
from .precisions import read_precisions
from .schema import STATUS_OK, STATUS_STALE, Item, Meta, set_meta

if TYPE_CHECKING:
    from .store import LibraryStore

log = logging.getLogger("bindsearch")
STALE_REASON = "embedded by a tower the space no longer has: to be embedded again"


def rebindable(library: LibraryStore, requested: Space) -> set[Modality] | None:
    """The modalities whose vectors ``requested`` would change, when it and the library's space come from one
    base space (the one bound from the other, or both from a third) and agree on the dimension; else None."""
    if requested.dim != library.dim:
        return None
    held = library.space
    if requested.root_fingerprint() != held.root_fingerprint():
        return None
    modalities = set(held.modalities) | set(requested.modalities)
    return {m for m in modalities
            if m not in held.modalities or m not in requested.modalities
            or requested.modality_fingerprint(m) != held.modality_fingerprint(m)}


def rebind(library: LibraryStore, requested: Space, changed: set[Modality]) -> int:
    """Mark the items of ``changed`` stale, then record ``requested`` as the library's space (under the writer
    lock, which ``writer`` takes). Returns the number of items to embed again."""
    with library._engine.connect() as conn:
        rows = conn.execute(select(Item.path, Item.modality, Item.size, Item.mtime_ns).where(
            Item.modality.in_([m.value for m in changed]), Item.status == STATUS_OK)).all()
    with library.writer(kept="the library keeps its space and every vector") as writer:
        for path, modality, size, mtime_ns in rows:
            writer.put_failed(path, Modality(modality), size, mtime_ns, STALE_REASON, status=STATUS_STALE)
            if writer.pending >= 4096:
                writer.commit()
        writer.commit()
        values = {"space_spec": json.dumps(requested.spec, sort_keys=True), "space_name": requested.name,
                  "space_fingerprint": requested.fingerprint}
        with library._engine.begin() as conn:
            for key, value in values.items():
                set_meta(conn, key, value)
            precisions = read_precisions(conn)  # (what embedded the changed modalities no longer holds)
            kept = {m: p for m, p in precisions.items() if m not in {c.value for c in changed}}
            if kept != precisions:
                conn.execute(delete(Meta).where(Meta.key == "precisions"))
                if kept:
                    set_meta(conn, "precisions", json.dumps(kept, sort_keys=True))
        library._meta.update(values)
    library._space = requested
    log.info("library %s now uses space %s: %d items of %s to embed again", library.path, requested.name,
             len(rows), ", ".join(sorted(m.value for m in changed)) or "no modality")
    return len(rows)
