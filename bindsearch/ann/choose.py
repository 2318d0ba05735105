"""Which engine for how many vectors, and the one way to build, load and judge an index of either kind."""

from __future__ import annotations

import numpy as np

from . import files
from .approximate import MARKER as APPROXIMATE_MARKER
from .approximate import ApproximateIndex
from .base import Fetch, VectorIndex, as_ids
from .defaults import BACK_TO_FLAT, IvfParams, exact_limit
from .flat import MARKER as FLAT_MARKER
from .flat import FlatIndex
from .ivf_build import Chunks

ENGINES: dict[bytes, type[VectorIndex]] = {FLAT_MARKER: FlatIndex, APPROXIMATE_MARKER: ApproximateIndex}


def engine_for(n: int, dim: int) -> str:
    """The kind of index for ``n`` vectors of ``dim`` dimensions: exact while that is still fast."""
    return FlatIndex.kind if n <= exact_limit(dim) else ApproximateIndex.kind


def build_index(ids: np.ndarray, chunks: Chunks, dim: int, fetch: Fetch, *, kind: str | None = None,
                params: IvfParams | None = None) -> VectorIndex:
    """An index of ``chunks()`` (ids, vectors) holding exactly ``ids``, of ``kind`` (chosen by their number
    when None)."""
    ids = as_ids(ids)
    kind = kind or engine_for(ids.size, dim)
    if kind == FlatIndex.kind:
        index = FlatIndex.build(dim, chunks)
        if index.size != np.unique(ids).size:
            raise ValueError(f"the chunks gave {index.size} vectors for the {ids.size} ids of the build")
        return index
    if kind == ApproximateIndex.kind:
        return ApproximateIndex.build(ids, chunks, dim, fetch, params)
    raise ValueError(f"unknown index kind {kind!r} (known: {FlatIndex.kind}, {ApproximateIndex.kind})")


def load_index(path: str, dim: int, fetch: Fetch | None) -> VectorIndex:
    """Whichever engine wrote ``path``, loaded; ValueError (one line) if it is unreadable, damaged, of an
    unknown engine or of another dimension."""
    engine = ENGINES.get(files.trailer_marker(path) or b"")
    if engine is None:
        files.checked_payload(path)  # says what is wrong with a cut or unreadable file
        raise ValueError("the file is not an index of a known engine")
    return engine.load(path, dim, fetch)


def should_rebuild(index: VectorIndex) -> bool:
    """Whether ``index`` is due a rebuild: an exact one grown past the exact limit, an approximate one
    shrunk well below it, or whose tail or tombstones have grown too large."""
    if isinstance(index, FlatIndex):
        return index.size > exact_limit(index.dim)
    if isinstance(index, ApproximateIndex):
        return index.size < BACK_TO_FLAT * exact_limit(index.dim) or index.needs_rebuild()
    return False
