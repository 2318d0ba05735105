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
from .windows import WINDOWED

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
    """One search result, best first by ``rank`` (1-based); ``score`` is the cosine similarity.

    ``id`` is the item's. A hit on a time window of a long audio or video file
    carries the window's ``start`` and ``end`` in seconds (None for a whole file).
    """

    rank: int
    score: float
    modality: Modality
    path: str
    id: int
    start: float | None = None
    end: float | None = None


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
    *,
    windows: bool = False,
) -> list[Hit]:
    """The ``k`` results closest to the query among the target modalities, best first.

    Each target modality's index is searched for its own top ``k`` and the
    lists are merged by score. Long audio and video files also have time
    windows: by default a file is one result, scored by the best of its
    whole-file vector and its windows (with that window's times when a window
    wins); with ``windows=True`` each window is a result of its own (and a
    file with windows is no longer listed as a whole).
    """
    if k <= 0:
        raise UsageError(f"k must be a positive number of results (got {k})")
    if isinstance(query, np.ndarray):
        if query.shape != (library.dim,):
            raise UsageError(f"a query vector must have shape ({library.dim},), got {query.shape}")
        vector = l2_normalize(query)
    else:
        vector = embed_terms(library.space, list(query))
    candidates: list[_Candidate] = []
    for modality in resolve_targets(library, targets):
        candidates += _search_modality(library, vector, modality, k, windows)
    candidates.sort(key=lambda c: (-c.score, c.item_id, c.start or 0.0))
    top = candidates[:k]
    rows = library.items([c.item_id for c in top])
    hits = []
    for c in top:
        if c.item_id in rows:  # an item deleted since the index was read is dropped
            path, modality = rows[c.item_id]
            hits.append(Hit(len(hits) + 1, c.score, modality, path, c.item_id, c.start, c.end))
    return hits


@dataclass(frozen=True)
class _Candidate:
    score: float
    item_id: int
    start: float | None = None
    end: float | None = None


def _search_modality(library: Library, vector: np.ndarray, modality: Modality, k: int,
                     windows: bool) -> list[_Candidate]:
    """The top ``k`` candidates of one modality, whole files and windows as ``search`` describes."""
    scores, ids = library.vector_index(modality).search(vector[None, :], k)
    files = [_Candidate(float(s), int(i)) for s, i in zip(scores[0], ids[0]) if i >= 0]
    window_index = library.vector_index(modality, windows=True) if modality in WINDOWED else None
    if window_index is None or window_index.size == 0:
        return files
    if windows:
        # Each window on its own; whole files only for files without windows.
        found = _window_candidates(library, window_index, vector, k)
        windowed = library.items_with_windows([c.item_id for c in files])
        return [c for c in files if c.item_id not in windowed] + found
    # One result per file: search windows until k distinct files have one (or none are left).
    wanted = k
    while True:
        found = _window_candidates(library, window_index, vector, wanted)
        best: dict[int, _Candidate] = {}
        for c in found:  # best first: the first window of a file is its best
            best.setdefault(c.item_id, c)
        if len(best) >= k or len(found) < wanted:
            break
        wanted *= 4
    for c in files:
        if c.item_id not in best:
            # Its windows did not make the cut, so none beats the last window retrieved;
            # the file still gets its best window's score if that beats its own vector.
            best[c.item_id] = max(c, _best_window(library, c.item_id, vector), key=lambda x: x.score)
        elif c.score > best[c.item_id].score:
            best[c.item_id] = c  # the whole-file vector beats every window
    return list(best.values())


def _window_candidates(library: Library, index: Any, vector: np.ndarray, k: int) -> list[_Candidate]:
    scores, ids = index.search(vector[None, :], k)
    pairs = [(float(s), int(i)) for s, i in zip(scores[0], ids[0]) if i >= 0]
    stored = library.windows([i for _, i in pairs])
    return [
        _Candidate(score, w.item_id, w.start, w.end)
        for score, window_id in pairs
        if (w := stored.get(window_id)) is not None
    ]


def _best_window(library: Library, item_id: int, vector: np.ndarray) -> _Candidate:
    """The best-scoring window of one item (a score of -inf when it has none)."""
    best = _Candidate(float("-inf"), item_id)
    for start, end, window_vector in library.windows_of(item_id):
        score = float(window_vector @ vector)
        if score > best.score:
            best = _Candidate(score, item_id, start, end)
    return best
