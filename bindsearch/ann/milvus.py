"""The Milvus engine: vectors kept in a Milvus collection (Milvus Lite in a local folder, or a server), searched
there and re-scored exactly here.

A collection holds one row per id: the int64 primary key is the id (no auto id) and one FLOAT_VECTOR field,
indexed for inner product. Milvus answers the approximate part; every hit it returns comes back with its
stored vector, and the score is recomputed in float32 here, so scores are exact inner products whatever the
index type. ``allowed`` sets of up to ``FETCH_LIMIT`` ids are not searched in Milvus at all: their vectors
are fetched by primary key and ranked exactly. On Milvus Lite at 50k x 1024
(benchmarks/results/scale_out_milvus-50k-cpu2):
100 ids 22 ms fetched against 43 ms filtered, 1000 ids 226 against 34 ms (a fetch costs ~0.22 ms an id, a
filtered search a scan of every row), so larger sets go into ``id in [...]`` filters; those are exact with
FLAT, approximate like the index otherwise.

Milvus limits a search to topk 16 384 and a request to 64 MiB (a server's default; Lite takes 256), so
writes go in chunks of at most ``_CHUNK_BYTES`` and id lists inside filter expressions are bounded.

pymilvus is imported here only, when an index is opened: ``import bindsearch`` never needs it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ..errors import LibraryError, UsageError, first_line
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
from .defaults import exact_filter_limit
from .idsets import sorted_ids
from .topk import EMPTY_SCORE, exact_search, merge_top_k, top_k

MARKER = b"bsmilvs1"
_FORMAT = 1
TOKEN_VARIABLE = "BINDSEARCH_MILVUS_TOKEN"  # a server's token is read from here on load, never written to disk
DEFAULT_PORT = 19530
MAX_TOPK = 16_384  # Milvus refuses a larger topk (and a larger nq)
_CHUNK_BYTES = 16 << 20  # per upsert or fetch request: a quarter of a server's 64 MiB message limit
_MAX_FILTER_IDS = 100_000  # ids in one `id in [...]` expression (~1 MB of text); more go in several searches
_QUERY_BLOCK = 64  # queries per search request: their hits and vectors stay well under the message limit
ID, VECTOR = "id", "vector"
FETCH_LIMIT = 256  # allowed ids ranked from their fetched vectors (see the module's docstring)

# Index types per deployment and their build and search parameters. Milvus Lite keeps vectors in segments of
# about 32k rows at 1024 dims (128 MiB memtables) and builds one index per segment: 128 lists suits that size.
# A server gets HNSW, the index Milvus recommends for in-memory collections.
DEFAULT_INDEX = {"lite": "IVF_FLAT", "server": "HNSW"}
BUILD_PARAMS: dict[str, dict[str, int]] = {
    "FLAT": {}, "AUTOINDEX": {}, "IVF_FLAT": {"nlist": 128}, "HNSW": {"M": 16, "efConstruction": 200},
    "DISKANN": {},
}
LITE_TYPES = ("FLAT", "IVF_FLAT", "AUTOINDEX")  # what Lite offers on every version, not just the newest
# Of 128 lists per segment. Clustered 1024-d vectors, 200k on Lite (benchmarks/results/scale_out_milvus-*):
# recall@10 0.8925 at 1, 0.946 at 2, 0.986 at 4; 8 leaves room for segments that compaction makes larger.
DEFAULT_NPROBE = 8
DEFAULT_EF = 64


@dataclass(frozen=True)
class MilvusTarget:
    """Where a collection lives: ``kind`` "lite" (``address`` a local path ending in .db) or "server"
    (``address`` an http(s) URL), and the URI it was given as."""

    kind: str
    address: str
    uri: str


def parse_uri(uri: str) -> MilvusTarget:
    """``milvus:///abs/path.db`` (Milvus Lite), ``milvus://host[:port]`` or ``http(s)://host[:port]`` (a
    server); UsageError naming the URI otherwise."""
    parts = urlsplit(uri.strip())
    if parts.scheme == "milvus" and not parts.netloc:
        path = parts.path
        if not path.startswith("/") or not path.endswith(".db") or path.endswith("/.db"):
            raise UsageError(f"{uri}: a Milvus Lite URI needs an absolute path to a .db file "
                             "(milvus:///abs/path/file.db)")
        return MilvusTarget("lite", os.path.normpath(path), uri)
    if parts.scheme == "milvus" and parts.netloc.endswith(".db"):
        # milvus://file.db reads as a host named file.db: almost surely a Lite file meant, and a relative one.
        raise UsageError(f"{uri}: a Milvus Lite URI needs an absolute path to a .db file "
                         "(milvus:///abs/path/file.db)")
    if parts.scheme in ("milvus", "http", "https") and parts.hostname:
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise UsageError(f"{uri}: a Milvus server URI is a host and a port only")
        try:
            port = parts.port or (DEFAULT_PORT if parts.scheme == "milvus" else None)
        except ValueError:
            raise UsageError(f"{uri}: the port is not a number from 0 to 65535") from None
        scheme = "http" if parts.scheme == "milvus" else parts.scheme
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return MilvusTarget("server", f"{scheme}://{host}" + (f":{port}" if port else ""), uri)
    raise UsageError(f"{uri}: not a Milvus URI (milvus:///abs/path.db, milvus://host:19530 or http://host:19530)")


def _pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError:
        raise UsageError("the Milvus engine needs pymilvus (and milvus-lite for milvus:/// files): "
                         "pip install 'bindsearch[milvus]'") from None
    # pymilvus logs every failed call with a traceback; its errors reach the user here, once, as one line.
    logging.getLogger("pymilvus.decorators").setLevel(logging.CRITICAL)
    logging.getLogger("pymilvus").setLevel(logging.ERROR)  # (its notices, "use client-side ts instead")
    logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)  # (a traceback for a file in use: said here)
    return pymilvus


class MilvusIndex(VectorIndex):
    """One Milvus collection behind the ``VectorIndex`` interface; see the module's docstring."""

    kind = "milvus"

    def __init__(self, uri: str, collection: str, dim: int, *, index_type: str | None = None,
                 build_params: dict | None = None, search_params: dict | None = None,
                 token: str | None = None, timeout: float = 10.0) -> None:
        self.target = parse_uri(uri)
        self.uri, self.collection, self.dim, self.timeout = uri, collection, dim, timeout
        self.index_type = (index_type or DEFAULT_INDEX[self.target.kind]).upper()
        if self.target.kind == "lite" and self.index_type not in LITE_TYPES:
            raise UsageError(f"{uri}: Milvus Lite offers the index types {', '.join(LITE_TYPES)}, "
                             f"not {self.index_type}")
        if self.index_type not in BUILD_PARAMS:
            raise UsageError(f"{uri}: unknown Milvus index type {self.index_type} "
                             f"(known: {', '.join(BUILD_PARAMS)})")
        self.build_params = {**BUILD_PARAMS[self.index_type], **(build_params or {})}
        self.search_params = dict(search_params or {})
        # allowed sets up to this many ids are ranked from their fetched vectors; excluded sets are dropped
        # from over-fetched hits while topk stays within this: attributes, so that tests can reach each path.
        self.fetch_limit = min(FETCH_LIMIT, exact_filter_limit(dim))
        self.overfetch_limit = MAX_TOPK
        self._client = self._connect(token)
        self._open_collection()

    # -- connection and collection -------------------------------------------------------------------------

    def _fail(self, doing: str, exc: BaseException) -> LibraryError:
        return LibraryError(f"{self.uri}: {doing} failed: {_reason(exc)}")

    def _call(self, doing: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """A client call; its MilvusException (or a connection error) becomes one LibraryError line."""
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except Exception as exc:  # pymilvus raises MilvusException and grpc's errors alike
            raise self._fail(doing, exc) from None

    def _connect(self, token: str | None) -> Any:
        pymilvus = _pymilvus()
        address = self.target.address
        if self.target.kind == "lite":
            folder = os.path.dirname(address)
            if not os.path.isdir(folder):
                raise LibraryError(f"{self.uri}: the folder {folder} does not exist")
        try:
            return pymilvus.MilvusClient(address, token=token or "", timeout=self.timeout)
        except Exception as exc:
            if self.target.kind == "lite" and _locked_by_another_process(address):
                raise LibraryError(f"{self.uri} is open in another process (a Milvus Lite file is one process's: "
                                   "for several, serve it with `milvus-lite server --data-dir FILE --port N` and "
                                   "name milvus://127.0.0.1:N instead)") from None
            raise LibraryError(f"{self.uri}: cannot reach Milvus: {_reason(exc)}") from None

    def _open_collection(self) -> None:
        if not self._call("listing collections", "has_collection", self.collection):
            self._create_collection()
        else:
            self._check_collection()
        self._call("loading the collection", "load_collection", self.collection)

    def _create_collection(self) -> None:
        pymilvus = _pymilvus()
        schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(ID, pymilvus.DataType.INT64, is_primary=True)
        schema.add_field(VECTOR, pymilvus.DataType.FLOAT_VECTOR, dim=self.dim)
        index = self._client.prepare_index_params()
        index.add_index(field_name=VECTOR, index_type=self.index_type, metric_type="IP", params=self.build_params)
        # Strong: a search right after an add or a remove sees it (Milvus's default, Bounded, may not).
        self._call("creating the collection", "create_collection", self.collection, schema=schema,
                   index_params=index, consistency_level="Strong")

    def _check_collection(self) -> None:
        described = self._call("reading the collection", "describe_collection", self.collection)
        fields = {f["name"]: f for f in described.get("fields", [])}
        key, vector = fields.get(ID), fields.get(VECTOR)
        if key is None or not key.get("is_primary") or vector is None:
            raise LibraryError(f"{self.uri}: the collection {self.collection} is not a bindsearch vector "
                               f"collection (no int64 key {ID!r} and vector {VECTOR!r})")
        found = int((vector.get("params") or {}).get("dim", -1))
        if found != self.dim:
            raise LibraryError(f"{self.uri}: the collection {self.collection} holds vectors of dimension "
                               f"{found}, not {self.dim}")
        indexes = self._call("reading the collection's index", "list_indexes", self.collection)
        if indexes:
            info = self._call("reading the collection's index", "describe_index", self.collection, indexes[0])
            self.index_type = str(info.get("index_type", self.index_type)).upper()

    def close(self) -> None:
        self._client.close()

    # -- the interface -------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        # count(*) under Strong consistency is exact; the collection statistics count deleted rows until a
        # compaction on a server.
        rows = self._call("counting vectors", "query", self.collection, filter="", output_fields=["count(*)"],
                          consistency_level="Strong")
        return int(rows[0]["count(*)"]) if rows else 0

    def ids(self) -> np.ndarray:
        """Every live id, ascending."""
        iterator = self._call("listing ids", "query_iterator", self.collection, batch_size=MAX_TOPK,
                              output_fields=[ID])
        parts = []
        try:
            while batch := iterator.next():
                parts.append(np.fromiter((row[ID] for row in batch), np.int64, len(batch)))
        except Exception as exc:
            raise self._fail("listing ids", exc) from None
        finally:
            iterator.close()
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = as_ids(ids)
        vectors = as_vectors(vectors, ids.size, self.dim)
        check_distinct(ids)
        step = self._rows_per_request()
        for start in range(0, ids.size, step):
            rows = [{ID: int(i), VECTOR: v} for i, v in zip(ids[start:start + step], vectors[start:start + step])]
            self._call("writing vectors", "upsert", self.collection, rows)  # upsert: a known id is replaced
        self._settle(ids.size)

    def remove(self, ids: np.ndarray) -> None:
        ids = np.unique(as_ids(ids))
        for start in range(0, ids.size, _MAX_FILTER_IDS):
            self._call("removing vectors", "delete", self.collection, ids=ids[start:start + _MAX_FILTER_IDS].tolist())
        self._settle(ids.size)

    def _settle(self, n: int) -> None:
        """Milvus Lite searches its unflushed rows by a per-row scan in Python, every query: 20k rows cost 3 to
        4 s a search and a count, against 0.2 s once flushed (a segment with its index; the flush took 3.9 s).
        So Lite flushes at the end of each write. A server needs no flush to show the writes (Strong
        consistency) and advises against frequent ones."""
        if n and self.target.kind == "lite":
            self._call("flushing", "flush", self.collection)

    def vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the ids of ``ids`` that are live, ascending; their stored vectors (n, dim) float32)."""
        ids = sorted_ids(ids)
        found_ids, found = [], []
        step = self._rows_per_request()
        for start in range(0, ids.size, step):
            rows = self._call("reading vectors", "get", self.collection, ids=ids[start:start + step].tolist(),
                              output_fields=[ID, VECTOR])
            found_ids.extend(row[ID] for row in rows)
            found.extend(row[VECTOR] for row in rows)
        got = np.asarray(found_ids, np.int64)
        vectors = np.asarray(found, np.float32).reshape(-1, self.dim)
        order = np.argsort(got)
        return got[order], vectors[order]

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               excluded: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = as_queries(queries, self.dim)
        m = queries.shape[0]
        excluded = sorted_ids(excluded) if excluded is not None else np.zeros(0, np.int64)
        if k <= 0 or m == 0:
            return empty_result(m)
        if k > MAX_TOPK:  # Milvus's own limit: fine while the collection holds no more than that
            live = self.size
            if live > MAX_TOPK:
                raise UsageError(f"{self.uri}: Milvus returns at most {MAX_TOPK} hits a query, not {k}")
            k = max(live, 1)
        if allowed is not None:
            allowed = sorted_ids(allowed)
            if allowed.size <= self.fetch_limit:
                return self._search_fetched(queries, k, allowed, excluded)
            # Larger sets go into filter expressions of bounded size, one search each, merged.
            chunks: list[np.ndarray | None] = [allowed[i:i + _MAX_FILTER_IDS]
                                               for i in range(0, allowed.size, _MAX_FILTER_IDS)]
        else:
            chunks = [None]
        results = []
        for chunk in chunks:
            expression, over = self._filter(chunk, excluded, k)
            parts = [self._search_milvus(queries[i:i + _QUERY_BLOCK], k, over, expression, excluded)
                     for i in range(0, m, _QUERY_BLOCK)]
            results.append((np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])))
        scores, ids = results[0] if len(results) == 1 else merge_top_k(results, k)
        # A query with k hits proves k live ones (k' = k); when every query came back short, a count (a scan
        # of every row on Milvus Lite: 1 s at 50k) says how many slots the live, allowed ids fill.
        if not (ids[:, -1] >= 0).any():
            live = sum(self._count(_in_expression(c)) if c is not None else self.size for c in chunks)
            width = min(k, live)
            scores, ids = scores[:, :width], ids[:, :width]
        return scores, ids

    def _search_fetched(self, queries: np.ndarray, k: int, allowed: np.ndarray,
                        excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact search over the live ones of ``allowed``, their vectors read by primary key."""
        live, vectors = self.vectors(allowed)
        width = min(k, live.size)
        if width == 0:
            return empty_result(queries.shape[0])
        keep = ~np.isin(live, excluded)
        live, vectors = live[keep], vectors[keep]
        if live.size == 0:
            return np.full((queries.shape[0], width), EMPTY_SCORE, np.float32), \
                np.full((queries.shape[0], width), -1, np.int64)
        order = np.argsort(live)

        def fetch(ids: np.ndarray) -> np.ndarray:
            return vectors[order[np.searchsorted(live[order], ids)]]

        return top_k(*exact_search(queries, live, fetch, min(width, live.size)), width)

    def _filter(self, allowed: np.ndarray | None, excluded: np.ndarray, width: int) -> tuple[str, int]:
        """(the filter expression, how many extra hits to ask for). Excluded ids are asked for and dropped
        here while that keeps topk within Milvus's limit (a filter costs a scan of the expression's ids per
        segment); beyond it they go into the expression."""
        if allowed is not None:
            allowed = np.setdiff1d(allowed, excluded, assume_unique=True)
            return _in_expression(allowed), 0
        if excluded.size == 0:
            return "", 0
        if width + excluded.size <= self.overfetch_limit:
            return "", int(excluded.size)
        return f"{ID} not in [{','.join(map(str, excluded.tolist()))}]", 0

    def _search_milvus(self, queries: np.ndarray, width: int, over: int, expression: str,
                       excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One search request; its hits re-scored exactly from the vectors it returns, excluded ones dropped."""
        limit = min(MAX_TOPK, width + over)
        hits = self._call("searching", "search", self.collection, data=list(queries), limit=limit,
                          filter=expression, anns_field=VECTOR, output_fields=[VECTOR],
                          search_params={"metric_type": "IP", "params": self._search_params(limit)},
                          consistency_level="Strong")
        m = queries.shape[0]
        ids = np.full((m, limit), -1, np.int64)
        scores = np.full((m, limit), EMPTY_SCORE, np.float32)
        for row, found in enumerate(hits):
            if not found:
                continue
            got = np.fromiter((hit[ID] for hit in found), np.int64, len(found))
            vectors = np.asarray([hit["entity"][VECTOR] for hit in found], np.float32)
            keep = ~np.isin(got, excluded) if excluded.size else np.ones(got.size, bool)
            got, vectors = got[keep], vectors[keep]
            ids[row, :got.size] = got
            scores[row, :got.size] = vectors @ queries[row]
        return top_k(scores, ids, width)

    def _search_params(self, limit: int) -> dict:
        params = dict(self.search_params)
        if self.index_type == "IVF_FLAT":
            params.setdefault("nprobe", DEFAULT_NPROBE)
        elif self.index_type == "HNSW":
            params["ef"] = max(int(params.get("ef", DEFAULT_EF)), limit)  # HNSW needs ef >= topk
        elif self.index_type == "DISKANN":
            params["search_list"] = max(int(params.get("search_list", DEFAULT_EF)), limit)
        return params

    def _count(self, expression: str) -> int:
        rows = self._call("counting vectors", "query", self.collection, filter=expression,
                          output_fields=["count(*)"], consistency_level="Strong")
        return int(rows[0]["count(*)"]) if rows else 0

    def _rows_per_request(self) -> int:
        return max(1, min(MAX_TOPK, _CHUNK_BYTES // (4 * self.dim + 64)))

    # -- the descriptor --------------------------------------------------------------------------------------

    def descriptor(self) -> dict:
        return {"format": _FORMAT, "kind": self.kind, "uri": self.uri, "collection": self.collection,
                "dim": self.dim, "index_type": self.index_type, "build_params": self.build_params,
                "search_params": self.search_params}

    def save(self, path: str) -> None:
        """The vectors live in Milvus: the file says where (JSON, with the checksummed trailer of every index
        file), never the token."""
        body = json.dumps(self.descriptor(), sort_keys=True).encode()
        files.write_atomic(path, MARKER, lambda write: write(body))

    @classmethod
    def load(cls, path: str, dim: int, fetch: Fetch | None = None) -> MilvusIndex:
        """Reconnect to the collection ``save`` described (a server's token from ``BINDSEARCH_MILVUS_TOKEN``);
        ValueError if the file is unusable or of another dimension, LibraryError if Milvus is."""
        marker, length = files.checked_payload(path)
        if marker != MARKER:
            raise ValueError("the file is not a Milvus index descriptor (another engine wrote it)")
        try:
            with open(path, "rb") as f:
                meta = json.loads(f.read(length))
        except (OSError, ValueError) as exc:
            raise ValueError(f"unreadable Milvus index descriptor: {first_line(exc)}") from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT or meta.get("kind") != cls.kind:
            raise ValueError("the file is not a Milvus index descriptor of a known format")
        if meta.get("dim") != dim:
            raise ValueError(f"the index is of dimension {meta.get('dim')}, not {dim}")
        return cls(meta["uri"], meta["collection"], dim, index_type=meta.get("index_type"),
                   build_params=meta.get("build_params"), search_params=meta.get("search_params"),
                   token=os.environ.get(TOKEN_VARIABLE))

    def stats(self) -> IndexStats:
        exact = self.index_type == "FLAT"
        return IndexStats(kind=self.kind, size=self.size, built_at=None, expected_recall=1.0 if exact else None,
                          tail=0, removed=0)


def _locked_by_another_process(path: str) -> bool:
    """Whether the Milvus Lite data at ``path`` is held by another process (it locks its folder's lock file)."""
    import fcntl

    for name in ("LOCK",):  # (Milvus Lite 3: an exclusive flock on it while open)
        candidate = os.path.join(path, name)
        if not os.path.isfile(candidate):
            continue
        try:
            with open(candidate, "rb") as f:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
        except OSError:
            return True
    return False


def _in_expression(ids: np.ndarray) -> str:
    return f"{ID} in [{','.join(map(str, ids.tolist()))}]"


def _reason(exc: BaseException) -> str:
    """A pymilvus error's message without its class wrapper: ``<MilvusException: (code=2, message=...)>``."""
    message = getattr(exc, "message", None)
    return str(message) if message else first_line(exc)


