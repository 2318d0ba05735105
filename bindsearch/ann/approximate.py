"""The approximate engine: IVF with RaBitQ codes (1 to 4 bits a dimension), re-ranked exactly, plus an
exact tail.

What it holds:

- ``built``: the IVF-RaBitQ index of the last build (136 bytes a 1024-d vector at 1 bit), with its sorted
  ids;
- ``removed``: tombstones, ids of the build removed since (or given a new vector): an IVF list cannot
  lose a code cheaply, so they stay in the codes, are kept out of every search by a selector, and go at
  the next build;
- ``tail``: an exact flat index of the vectors added since the build, so that they are found at once.

A query takes the ``rerank`` best candidates of the codes, reads their full-precision vectors through
``fetch`` and scores them exactly, then merges them with the tail's exact hits: every score returned is
an exact inner product. ``needs_rebuild`` says when the tail or the tombstones have grown enough that a
rebuild pays.
"""

from __future__ import annotations

import math
import time

import faiss
import numpy as np

from ..errors import first_line
from . import files
from .base import (
    Fetch,
    IndexStats,
    VectorIndex,
    as_ids,
    as_queries,
    as_vectors,
    check_distinct,
    empty_result,
)
from .blas_threads import numpy_blas_on_one_thread
from .defaults import (
    RECALL_PROBES,
    REMOVED_SHARE,
    TAIL_SHARE,
    TARGET_RECALL,
    IvfParams,
    exact_filter_limit,
    exact_limit,
    ivf_params,
    rerank_size,
    widened,
)
from .flat import search_ids
from .idsets import IdLookup, in_sorted, sorted_ids
from .ivf_build import Chunks, Probes, fill, recall, start_probes, train
from .selectors import Selection
from .tail import Tail
from .topk import exact_scores, merge_top_k, top_k

MARKER = b"bsivfrq1"
_FORMAT = 1
_QUERY_BLOCK = 16  # queries re-ranked together: at most 16 x rerank vectors fetched at once
_WIDEN = 4  # nprobe grows by this factor while a search comes back with fewer hits than it must have


class ApproximateIndex(VectorIndex):
    """IVF-RaBitQ codes of the last build, tombstones, and an exact tail; see the module's docstring."""

    kind = "ivf-rabitq"

    def __init__(self, dim: int, fetch: Fetch, params: IvfParams, built: object, built_ids: np.ndarray,
                 removed: np.ndarray | None = None, tail: Tail | None = None, built_at: float | None = None,
                 expected_recall: float | None = None) -> None:
        if fetch is None:
            raise ValueError("an approximate index needs the vector store (fetch) to re-rank its candidates")
        self.dim, self.fetch, self.params, self.built = dim, fetch, params, built
        self.built_ids = built_ids  # sorted
        self.removed = removed if removed is not None else np.zeros(0, np.int64)  # sorted, within built_ids
        self.tail = tail if tail is not None else Tail(dim)
        self.built_at, self.expected_recall = built_at, expected_recall
        # The caller's version of each built vector (aligned with ``built_ids``), saved with the codes: what a
        # caller compares with its own records to tell which codes are out of date. None: not kept.
        self.versions: np.ndarray | None = None
        self._live: IdLookup | None = None  # the live ids, until they change
        self._built: IdLookup | None = None
        self._lists: np.ndarray | None = None

    @classmethod
    def build(cls, ids: np.ndarray, chunks: Chunks, dim: int, fetch: Fetch,
              params: IvfParams | None = None) -> ApproximateIndex:
        """Train on a sample of ``ids`` read through ``fetch``, then add ``chunks()`` (ids, vectors) one at a
        time; the chunks must hold exactly ``ids``. Measures its recall@10 on a hundred stored vectors."""
        ids = np.sort(as_ids(ids))
        check_distinct(ids)
        if ids.size == 0:
            raise ValueError("an approximate index needs vectors to train on")
        params = params or ivf_params(ids.size, dim)
        if params.nlist > ids.size:
            raise ValueError(f"{ids.size} vectors are too few for {params.nlist} lists")
        with numpy_blas_on_one_thread():
            built = train(dim, params, ids, fetch)
            probes = start_probes(ids, fetch, dim, RECALL_PROBES)
            built_ids = fill(built, dim, chunks, ids, probes)
        index = cls(dim, fetch, params, built, built_ids, built_at=time.time())
        index.expected_recall = index._probe_recall(probes)
        # Vectors with little structure (nearly uniform on the sphere) defeat the defaults: search wider until
        # the probes reach the target, more lists first, then more candidates re-ranked.
        while index.expected_recall < TARGET_RECALL:
            wider = widened(index.params)
            if wider is None:
                break
            index.params = wider
            index.expected_recall = index._probe_recall(probes)
        return index

    def _probe_recall(self, probes: Probes) -> float:
        _, found = self.search(probes.vectors, probes.k)
        return round(recall(probes, found), 4)

    @property
    def size(self) -> int:
        return int(self.built_ids.size - self.removed.size + self.tail.size)

    def ids(self) -> np.ndarray:
        """Every live id, ascending."""
        return self._live_ids().ids

    def _live_ids(self) -> IdLookup:
        if self._live is None:
            built = np.setdiff1d(self.built_ids, self.removed, assume_unique=True)
            self._live = IdLookup(np.sort(np.concatenate([built, self.tail.ids])))
        return self._live

    def _built_ids(self) -> IdLookup:
        if self._built is None:
            self._built = IdLookup(self.built_ids)
        return self._built

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = as_ids(ids)
        vectors = as_vectors(vectors, ids.size, self.dim)
        check_distinct(ids)
        if ids.size:
            self.remove(ids)  # an id of the build given a new vector is a tombstone there and lives in the tail
            self.tail.add(ids, vectors)
            self._live = None

    def remove(self, ids: np.ndarray) -> None:
        ids = as_ids(ids)
        if not ids.size:
            return
        gone = ids[self._built_ids().contains(ids)]
        if gone.size:
            self.removed = np.union1d(self.removed, gone)
        self.tail.remove(ids)
        self._live = None

    def needs_rebuild(self) -> bool:
        """Whether the tail or the tombstones have passed their share of the build (see ``defaults``)."""
        built_live = self.built_ids.size - self.removed.size
        tail_limit = min(TAIL_SHARE * max(built_live, 1), exact_limit(self.dim))
        return self.tail.size > tail_limit or self.removed.size > REMOVED_SHARE * self.built_ids.size

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               excluded: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = as_queries(queries, self.dim)
        live = self._live_ids()
        if allowed is not None:
            allowed = sorted_ids(allowed)
            allowed = allowed[live.contains(allowed)]
        reachable = live.ids if allowed is None else allowed
        width = min(k, reachable.size)
        if width <= 0 or queries.shape[0] == 0:
            return empty_result(queries.shape[0])
        excluded = sorted_ids(excluded) if excluded is not None else np.zeros(0, np.int64)
        # How many hits each query must have: what the approximate search must reach before it stops widening.
        target = min(width, reachable.size - int(in_sorted(excluded, reachable).sum()))
        if allowed is not None and allowed.size <= exact_filter_limit(self.dim):
            return top_k(*search_ids(queries, allowed, self.fetch, width, excluded), width)
        parts = [self._search_codes(queries[i : i + _QUERY_BLOCK], width, target, allowed, excluded)
                 for i in range(0, queries.shape[0], _QUERY_BLOCK)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _search_codes(self, queries: np.ndarray, width: int, target: int, allowed: np.ndarray | None,
                      excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The built codes' candidates re-ranked, merged with the tail's; lists probed more widely for the
        queries that come back with fewer than ``target`` hits, up to every list (an exhaustive scan)."""
        m = queries.shape[0]
        tail = self.tail.search(queries, width, allowed, excluded)
        built = Selection(allowed, np.concatenate([self.removed, excluded]))
        if allowed is None:
            nprobe = np.full(m, self.params.nprobe)
        else:
            nprobe = self._filtered_nprobe(queries, allowed)
        scores, ids = np.empty((m, width), np.float32), np.empty((m, width), np.int64)
        rows = np.arange(m)
        while rows.size:
            for probes in np.unique(nprobe[rows]):  # one FAISS call for the queries that probe as many lists
                group = rows[nprobe[rows] == probes]
                found = self._search_built(queries[group], rerank_size(self.params, width), int(probes),
                                           built.selector)
                exact = exact_scores(queries[group], found, self.fetch)
                scores[group], ids[group] = merge_top_k([(exact, found), (tail[0][group], tail[1][group])], width)
            short = rows[((ids[rows] >= 0).sum(axis=1) < target) & (nprobe[rows] < self.params.nlist)]
            nprobe[short] = np.minimum(self.params.nlist, nprobe[short] * _WIDEN)
            rows = short
        return scores, ids

    def _filtered_nprobe(self, queries: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """Per query, the nearest lists that together hold as many allowed codes as an unfiltered search
        scans codes. A filter unlike the query (other tags than its look) holds few ids in the query's own
        lists; a fixed widening would stop at the first few allowed codes found, not the best ones."""
        lists = self._lists_of_built()
        at = self._built_ids().positions(allowed)
        at = at[(at >= 0) & ~in_sorted(allowed, self.removed)]
        held = np.bincount(lists[at], minlength=self.params.nlist)
        wanted = min(int(held.sum()), math.ceil(self.params.nprobe * self.built_ids.size / self.params.nlist))
        _, nearest = self.built.quantizer.search(queries, self.params.nlist)
        reached = np.cumsum(held[np.maximum(nearest, 0)], axis=1) >= max(1, wanted)
        return np.maximum(self.params.nprobe, np.argmax(reached, axis=1) + 1)

    def _lists_of_built(self) -> np.ndarray:
        """The IVF list of each built id (aligned with ``built_ids``), read once from the inverted lists."""
        if self._lists is None:
            self._lists = np.zeros(self.built_ids.size, np.int32)
            invlists = self.built.invlists
            for number in range(self.params.nlist):
                size = invlists.list_size(number)
                if size:
                    pointer = invlists.get_ids(number)
                    ids = faiss.rev_swig_ptr(pointer, size).copy()
                    invlists.release_ids(number, pointer)
                    self._lists[self._built_ids().positions(ids)] = number
        return self._lists

    def _search_built(self, queries: np.ndarray, n: int, nprobe: int, selector: object) -> np.ndarray:
        params = faiss.IVFRaBitQSearchParameters()
        params.nprobe, params.qb = nprobe, self.params.qb
        if selector is not None:
            params.sel = selector
        return self.built.search(queries, n, params=params)[1]

    def stats(self) -> IndexStats:
        return IndexStats(kind=self.kind, size=self.size, built_at=self.built_at,
                          expected_recall=self.expected_recall, tail=self.tail.size,
                          removed=int(self.removed.size))

    def save(self, path: str) -> None:
        def write_faiss(index: object, write: files.Write) -> None:
            writer = faiss.PyCallbackIOWriter(write)
            faiss.write_index(index, writer)
            del writer  # flushes what FAISS buffered

        def body(write: files.Write) -> None:
            sections = files.SectionWriter(write)
            sections.section("built", lambda w: write_faiss(self.built, w))
            sections.array("built_ids", self.built_ids)
            sections.array("removed", self.removed)
            sections.array("tail_ids", self.tail.ids)
            sections.array("tail_vectors", self.tail.vectors)
            if self.versions is not None:
                sections.array("versions", np.ascontiguousarray(self.versions, dtype=np.int64))
            sections.finish({"format": _FORMAT, "kind": self.kind, "dim": self.dim, "params": self.params.to_dict(),
                             "built_at": self.built_at, "expected_recall": self.expected_recall})

        files.write_atomic(path, MARKER, body)

    @classmethod
    def load(cls, path: str, dim: int, fetch: Fetch | None) -> ApproximateIndex:
        with files.open_sections(path, MARKER) as sections:
            meta = sections.meta
            if meta.get("format") != _FORMAT or meta.get("kind") != cls.kind:
                raise ValueError(f"the file is not a {cls.kind} index of a known format")
            if meta.get("dim") != dim:
                raise ValueError(f"the index is of dimension {meta.get('dim')}, not {dim}")
            params = IvfParams.from_dict(meta.get("params") or {})
            try:
                built = faiss.read_index(faiss.PyCallbackIOReader(sections.reader("built")))
            except RuntimeError as exc:
                raise ValueError(f"unreadable FAISS index: {first_line(exc)}") from None
            built_ids = sections.array("built_ids", np.int64)
            removed = sections.array("removed", np.int64)
            tail_ids = sections.array("tail_ids", np.int64)
            tail_vectors = sections.array("tail_vectors", np.float32, dim)
            versions = sections.array("versions", np.int64) if sections.has("versions") else None
        if not isinstance(built, faiss.IndexIVFRaBitQ) or built.d != dim or built.nlist != params.nlist:
            raise ValueError(f"the file's codes are not an IVF-RaBitQ index of dimension {dim}")
        if built.ntotal != built_ids.size or tail_vectors.shape[0] != tail_ids.size:
            raise ValueError("the file's parts disagree on how many vectors it holds")
        if not (_ascending(built_ids) and _ascending(removed) and in_sorted(removed, built_ids).all()
                and np.unique(tail_ids).size == tail_ids.size):
            raise ValueError("the file's id lists are inconsistent")
        if versions is not None and versions.size != built_ids.size:
            raise ValueError("the file's versions do not match its vectors")
        tail = Tail(dim, tail_ids, tail_vectors)
        index = cls(dim, fetch, params, built, built_ids, removed, tail, meta.get("built_at"),
                    meta.get("expected_recall"))
        index.versions = versions
        return index


def _ascending(ids: np.ndarray) -> bool:
    return bool(np.all(ids[1:] > ids[:-1]))
