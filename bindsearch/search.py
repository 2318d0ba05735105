"""Queries: terms of any modality combined into one vector, searched over one or more modalities."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UsageError
from .modality import Modality
from .vectors import combine, l2_normalize

if TYPE_CHECKING:
    from .library import Library
    from .spaces import Space


@dataclass(frozen=True)
class QueryTerm:
    """One part of a query: a value of some modality and its weight (negative to subtract).

    ``value`` is a string for text, a file path for the other modalities (a
    PIL image also works for images), or a ready vector (numpy array).
    """

    modality: Modality
    value: Any
    weight: float = 1.0

    @classmethod
    def text(cls, text: str, weight: float = 1.0) -> QueryTerm:
        return cls(Modality.TEXT, text, weight)

    @classmethod
    def file(cls, modality: Modality | str, path: str | os.PathLike[str], weight: float = 1.0) -> QueryTerm:
        return cls(Modality.parse(modality), Path(path), weight)


@dataclass(frozen=True)
class Hit:
    """One search result, best first by ``rank`` (1-based); ``score`` is the cosine similarity."""

    rank: int
    score: float
    modality: Modality
    path: str
    id: int


def embed_terms(space: Space, terms: Sequence[QueryTerm]) -> np.ndarray:
    """The query vector: the normalised weighted sum of the individually normalised term vectors."""
    if not terms:
        raise UsageError("a query needs at least one term (text, image, ...)")
    vectors = []
    for term in terms:
        if isinstance(term.value, np.ndarray):
            if term.value.shape != (space.dim,):
                raise UsageError(f"a vector term must have shape ({space.dim},), got {term.value.shape}")
            vectors.append(term.value)
        else:
            vectors.append(space.embed(term.modality, term.value))
    return combine(vectors, [t.weight for t in terms])


def resolve_targets(library: Library, targets: Iterable[Modality | str] | None) -> list[Modality]:
    """The modalities to search: the given ones, or with None / "all" every modality the library holds."""
    names = [t.value if isinstance(t, Modality) else str(t) for t in (targets or [])]
    if not names or "all" in (n.lower() for n in names):
        return sorted(library.counts(), key=lambda m: list(Modality).index(m))
    seen: list[Modality] = []
    for name in names:
        modality = Modality.parse(name)
        if modality not in seen:
            seen.append(modality)
    return seen


def search(
    library: Library,
    query: Sequence[QueryTerm] | np.ndarray,
    targets: Iterable[Modality | str] | None = None,
    k: int = 10,
) -> list[Hit]:
    """The ``k`` items closest to the query among the target modalities, best first.

    Each target modality's index is searched for its own top ``k`` and the
    lists are merged by score.
    """
    if k <= 0:
        raise UsageError(f"k must be a positive number of results (got {k})")
    if isinstance(query, np.ndarray):
        if query.shape != (library.dim,):
            raise UsageError(f"a query vector must have shape ({library.dim},), got {query.shape}")
        vector = l2_normalize(query)
    else:
        vector = embed_terms(library.space, list(query))
    candidates: list[tuple[float, int]] = []
    for modality in resolve_targets(library, targets):
        scores, ids = library.vector_index(modality).search(vector[None, :], k)
        candidates.extend((float(s), int(i)) for s, i in zip(scores[0], ids[0]) if i >= 0)
    candidates.sort(key=lambda c: (-c[0], c[1]))
    top = candidates[:k]
    rows = library.items([i for _, i in top])
    hits = []
    for score, item_id in top:
        if item_id in rows:  # an item deleted since the index was read is dropped
            path, modality = rows[item_id]
            hits.append(Hit(rank=len(hits) + 1, score=score, modality=modality, path=path, id=item_id))
    return hits
