"""Searching a library: query terms into one vector, then every target modality ranked in one list."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UsageError
from ..filters import Filters
from ..modality import Modality
from ..vectors import combine, is_usable, l2_normalize
from ..windows import WINDOWED
from .calibration import MIN_OWN_REFERENCE, SCORE_SLACK, ScoreScale, rank_key, score_scale, usable_scores
from .dedup import keep_distinct
from .moments import merge_overlapping
from .terms import Like, QueryTerm

if TYPE_CHECKING:
    from ..ann.base import VectorIndex
    from ..library import LibraryStore as Library
    from ..spaces import Space

log = logging.getLogger("bindsearch")


@dataclass(frozen=True)
class Hit:
    """One search result, best first by ``rank`` (1-based).

    ``score`` is the raw cosine similarity with the query; ``calibrated`` is
    that score standardised for its modality (see ``search.calibration``),
    which is what ranks a list that mixes modalities. ``id`` is the item's.
    A hit on a time window of a long audio or video file carries the window's
    ``start`` and ``end`` in seconds (None for a whole file). ``tags`` are the
    item's tags.
    """

    rank: int
    score: float
    calibrated: float
    modality: Modality
    path: str
    id: int
    start: float | None = None
    end: float | None = None
    tags: tuple[str, ...] = ()


def embed_terms(space: Space, terms: Sequence[QueryTerm]) -> np.ndarray:
    """The query vector: the normalised weighted sum of the individually normalised term vectors."""
    return combine(_term_vectors(space, terms, None)[0], [t.weight for t in terms])


def query_vector(library: Library, query: Sequence[QueryTerm] | np.ndarray) -> tuple[np.ndarray, frozenset[int]]:
    """The query as one unit vector, and the items it names with ``like`` (to leave out of the results)."""
    if isinstance(query, np.ndarray):
        if query.shape != (library.dim,):
            raise UsageError(f"a query vector must have shape ({library.dim},), got {query.shape}")
        if not is_usable(query):
            raise UsageError("a query vector must be finite and not all zero")
        return l2_normalize(query), frozenset()
    terms = list(query)
    vectors, excluded = _term_vectors(library.space, terms, library)
    try:
        return combine(vectors, [t.weight for t in terms]), excluded
    except ValueError as exc:
        raise UsageError(f"cannot make a query of these terms: {exc}") from None


def _term_vectors(space: Space, terms: Sequence[QueryTerm],
                  library: Library | None) -> tuple[list[np.ndarray], frozenset[int]]:
    if not terms:
        raise UsageError("a query needs at least one term (text, image, ...)")
    # The stored vectors first: a 'like' that names nothing is refused before any model loads.
    stored: dict[int, np.ndarray] = {}
    excluded: set[int] = set()
    for n, term in enumerate(terms):
        if isinstance(term.value, Like):
            if library is None:
                raise UsageError("a 'like' term names an indexed item: search a library with it")
            item_ids, vector = library.stored_item_vector(term.value.item)
            if not is_usable(vector):
                raise UsageError(f"the stored vector of {term.value.item} is not finite: index the file again")
            stored[n] = vector
            excluded.update(item_ids)
        elif isinstance(term.value, np.ndarray):
            if term.value.shape != (space.dim,):
                raise UsageError(f"a vector term must have shape ({space.dim},), got {term.value.shape}")
            if not is_usable(term.value):
                raise UsageError("a vector term must be finite and not all zero")
            stored[n] = term.value
        elif term.modality is None:
            raise UsageError(f"query term {term.value!r} has no modality")
    vectors = [stored[n] if n in stored else space.embed(t.modality, t.value) for n, t in enumerate(terms)]
    return vectors, frozenset(excluded)


def parse_targets(targets: Iterable[Modality | str] | Modality | str | None,
                  known: Iterable[Modality] | None = None) -> list[Modality] | None:
    """The target modalities named, or None for all of them. UsageError for a name that is not a modality's,
    or (with ``known``, a space's modalities) not one of ``known``.

    Cheap, so that a front end can check its arguments before it opens a library or loads a model."""
    known = tuple(known) if known is not None else None
    if isinstance(targets, (str, Modality)):
        targets = [targets]
    names = [t.value if isinstance(t, Modality) else str(t) for t in (targets or [])]
    seen: list[Modality] = []
    for name in names:
        if name.lower() == "all":
            continue
        modality = Modality.parse(name, known)
        if modality not in seen:
            seen.append(modality)
    return None if not names or "all" in (n.lower() for n in names) else seen


def check_filters(library: Library, filters: Filters) -> None:
    """UsageError for a filter that names what the library does not hold (a tag no item carries)."""
    missing = library.unknown_tags(filters.tags) if filters.tags else []
    if missing:
        names = ", ".join(repr(t) for t in missing)
        raise UsageError(f"no item in the library carries the tag{'s' if len(missing) > 1 else ''} {names} "
                         "(bindsearch info lists the tags)")


def resolve_targets(library: Library, targets: Iterable[Modality | str] | Modality | str | None) -> list[Modality]:
    """The modalities to search: the given ones, or with None / "all" every modality the library holds."""
    named = parse_targets(targets, library.space.modalities | set(library.modalities_with_vectors()))
    return library.modalities_with_vectors() if named is None else named


def search(
    library: Library,
    query: Sequence[QueryTerm] | np.ndarray,
    targets: Iterable[Modality | str] | Modality | str | None = None,
    k: int = 10,
    *,
    windows: bool = False,
    filters: Filters | None = None,
    dedup: float | None = None,
    exact: bool = False,
) -> list[Hit]:
    """The ``k`` results closest to the query among the target modalities, best first.

    ``query`` is a list of QueryTerms (embedded, each normalised, weighted and
    summed, then normalised again) or a ready vector. Each target modality is
    searched for its best candidates; their scores are calibrated per modality
    and the lists merged by calibrated score (a stored copy of the query's
    own content, raw score 1, comes first whatever its modality).

    Long audio and video files also have time windows: by default a file is
    one result, scored by the best of its whole-file vector and its windows
    (with that window's times when a window wins); with ``windows=True`` each
    moment is a result of its own (the windows of a file that overlap its best
    one merged into it, see ``search.moments``). ``filters`` restrict the items searched
    (k results whenever k items pass); ``dedup`` (a cosine threshold) keeps
    only the best of each group of results that look alike. ``exact`` compares the
    query with every stored vector, even where an approximate index would answer.
    """
    if k <= 0:
        raise UsageError(f"k must be a positive number of results (got {k})")
    if dedup is not None and not -1.0 <= dedup <= 1.0:
        raise UsageError(f"the dedup threshold is a cosine similarity between -1 and 1 (got {dedup})")
    library.refresh()  # another process may have indexed more since the library was opened
    modalities = resolve_targets(library, targets)  # every argument is checked before the query is embedded
    check_filters(library, filters or Filters())
    vector, excluded = query_vector(library, query)
    filters = (filters or Filters()).excluding(excluded)
    pooled = _Pooled(library)
    searched = [_Target(library, m, vector, filters, windows, pooled, exact) for m in modalities]
    wanted = k if dedup is None else 2 * k
    while True:
        candidates: list[_Candidate] = []
        more = False
        for target in searched:
            found, full = target.candidates(wanted)
            candidates += found
            more = more or full
        candidates.sort(key=lambda c: (*rank_key(c.score, c.calibrated), c.item_id, c.start or 0.0))
        if dedup is not None:
            candidates = _distinct(library, candidates, dedup, k)
        if len(candidates) >= k or not more:
            break
        wanted *= 4
    top = candidates[:k]
    rows = library.items([c.item_id for c in top])
    tags = library.tags_of([c.item_id for c in top])
    hits = []
    for c in top:
        if c.item_id in rows:  # an item deleted since the index was read is dropped
            path, modality = rows[c.item_id]
            hits.append(Hit(len(hits) + 1, c.score, c.calibrated, modality, path, c.item_id, c.start, c.end,
                            tags.get(c.item_id, ())))
    return hits


@dataclass(frozen=True)
class _Candidate:
    score: float
    item_id: int
    start: float | None = None
    end: float | None = None
    window_id: int | None = None
    calibrated: float = 0.0


class _Target:
    """One target modality of a search: its indexes, the items the filters let through, its score scale."""

    def __init__(self, library: Library, modality: Modality, vector: np.ndarray, filters: Filters,
                 windows: bool, pooled: _Pooled, exact: bool = False) -> None:
        self.library = library
        self.modality = modality
        self.vector = vector
        self.windows = windows
        self.items = library.vector_index(modality, exact=exact)
        window_index = library.vector_index(modality, windows=True, exact=exact) if modality in WINDOWED else None
        self.window_index = window_index if window_index is not None and window_index.size else None
        # None: every item; else the ids that pass the filters (and their windows). Leaving out
        # only a few items (a --like query's own) needs no selection: they are excluded instead.
        self.allowed = library.select(modality, filters) if filters.on_metadata else None
        self.allowed_windows = (
            library.windows_of_items(self.allowed) if self.allowed is not None and self.window_index else None
        )
        self.excluded = (np.array(sorted(filters.exclude_ids), dtype=np.int64)
                         if filters.exclude_ids and self.allowed is None else None)
        self.excluded_windows = (library.windows_of_items(self.excluded)
                                 if self.excluded is not None and self.window_index else None)
        reference = library.reference_sample(modality)
        if len(reference) < MIN_OWN_REFERENCE:
            reference = pooled.sample()
        self.scale: ScoreScale = score_scale(vector, reference)

    def candidates(self, n: int) -> tuple[list[_Candidate], bool]:
        """Up to ``n`` candidates, best first, calibrated; and whether there may be more beyond them."""
        found, full = self._raw(n)
        return [_Candidate(c.score, c.item_id, c.start, c.end, c.window_id, self.scale.calibrate(c.score))
                for c in found], full

    def _raw(self, n: int) -> tuple[list[_Candidate], bool]:
        files, files_full = _top(self.items, self.vector, n, self.allowed, self.excluded)
        whole = [_Candidate(s, i) for s, i in files]
        if self.window_index is None:
            return whole, files_full
        library = self.library
        if self.windows:
            # Each moment on its own (overlapping windows of a file merged); whole files only for
            # files without windows. Merging shrinks the list: search windows until n moments are found.
            wanted = n
            while True:
                found, full = self._windows(wanted)
                moments = merge_overlapping(found)
                if len(moments) >= n or not full:
                    break
                wanted *= 4
            windowed = library.items_with_windows([c.item_id for c in whole])
            return ([c for c in whole if c.item_id not in windowed] + moments[:n],
                    full or files_full or len(moments) > n)
        # One result per file: search windows until n distinct files have one (or none are left).
        wanted = n
        while True:
            found, full = self._windows(wanted)
            best: dict[int, _Candidate] = {}
            for c in found:  # best first: the first window of a file is its best
                best.setdefault(c.item_id, c)
            if len(best) >= n or not full:
                break
            wanted *= 4
        for c in whole:
            if c.item_id not in best:
                # Its windows did not make the cut, so none beats the last window retrieved;
                # the file still gets its best window's score if that beats its own vector.
                best[c.item_id] = max(c, _best_window(library, c.item_id, self.vector), key=lambda x: x.score)
            elif c.score > best[c.item_id].score:
                best[c.item_id] = c  # the whole-file vector beats every window
        ranked = sorted(best.values(), key=lambda c: (-c.score, c.item_id, c.start or 0.0))
        return ranked[:n], full or files_full or len(ranked) > n

    def _windows(self, n: int) -> tuple[list[_Candidate], bool]:
        assert self.window_index is not None
        pairs, full = _top(self.window_index, self.vector, n, self.allowed_windows, self.excluded_windows)
        stored = self.library.windows([i for _, i in pairs])
        return [
            _Candidate(score, w.item_id, w.start, w.end, window_id)
            for score, window_id in pairs
            if (w := stored.get(window_id)) is not None
        ], full


class _Pooled:
    """The reference samples of every modality of the library together, built when first needed."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self._sample: np.ndarray | None = None

    def sample(self) -> np.ndarray:
        if self._sample is None:
            parts = [self.library.reference_sample(m) for m in self.library.modalities_with_vectors()]
            self._sample = np.concatenate(parts) if parts else np.zeros((0, self.library.dim), np.float32)
        return self._sample


def _top(index: VectorIndex, vector: np.ndarray, n: int, allowed: np.ndarray | None,
         excluded: np.ndarray | None = None) -> tuple[list[tuple[float, int]], bool]:
    """The ``n`` best (score, id) of an index (among ``allowed`` ids only, if given; never ``excluded`` ones),
    and whether it has more."""
    if allowed is not None and allowed.size == 0:
        return [], False
    scores, ids = index.search(vector[None, :], n, allowed=allowed, excluded=excluded)
    pairs, dropped = usable_scores(scores[0], ids[0])
    if dropped:
        log.warning("left out %d results whose stored vectors are damaged (scores not finite or outside [-1, 1])",
                    dropped)
    available = index.size if allowed is None else min(index.size, int(allowed.size))
    return pairs, len(pairs) + dropped == n and available > n


def _best_window(library: Library, item_id: int, vector: np.ndarray) -> _Candidate:
    """The best-scoring window of one item (a score of -inf when it has none)."""
    best = _Candidate(float("-inf"), item_id)
    for window_id, start, end, window_vector in library.windows_of(item_id, with_ids=True):
        score = float(window_vector @ vector)
        if math.isfinite(score) and abs(score) <= 1.0 + SCORE_SLACK and score > best.score:
            best = _Candidate(min(score, 1.0), item_id, start, end, window_id)
    return best


def _distinct(library: Library, candidates: list[_Candidate], threshold: float, k: int) -> list[_Candidate]:
    """The candidates (best first) less those that look like a better one: cosine >= threshold."""
    vectors = library.candidate_vectors([(c.item_id, c.window_id) for c in candidates])
    kept = keep_distinct(vectors, threshold) if len(candidates) else []
    return [candidates[i] for i in kept]
