"""A client of a running ``bindsearch serve``: the same searches, vectors and labels as the API gives in
process, answered by a server that has the model loaded already.

Standard library only (``urllib``), so that a command pays no import for it. Files are uploaded, whatever
folder they lie in; text and items go as JSON terms. What comes back is rebuilt into the API's own
dataclasses, so a caller cannot tell the two apart.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib import error, request

import numpy as np

from ..classify import Classification, LabelScore
from ..errors import BindsearchError, MediaError, UsageError
from ..filters import Filters, path_patterns
from ..modality import Modality
from ..search import Hit, Like, QueryTerm
from .state_file import read_record


class ServerGone(Exception):
    """The server did not answer (stopped, or not a bindsearch server): the caller works in process instead."""


class ServerClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 300.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.served: dict[str, Any] = {}  # what /api/server said when the server was found: library, space

    # -- the API's calls ------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return self._call("GET", "/api/info")

    def server(self) -> dict[str, Any]:
        """The library and space the server serves: what telling a live server from a stale record costs."""
        return self._call("GET", "/api/server")

    def search(self, terms: Sequence[QueryTerm], targets: Sequence[str] | None = None, k: int = 10, *,
               windows: bool = False, filters: Filters | None = None, dedup: float | None = None,
               exact: bool = False) -> list[Hit]:
        filters = filters or Filters()
        files = [t for t in terms if _is_file(t)]
        uploads = iter(range(len(files)))
        in_order = [{"upload": next(uploads), "weight": float(t.weight)} if _is_file(t) else _term_json(t)
                    for t in terms]
        fields: list[tuple[str, str]] = [
            ("terms", json.dumps(in_order)),
            ("targets", ",".join(targets) if targets else "all"), ("k", str(k)),
            ("windows", str(windows).lower()), ("exact", str(exact).lower()),
            ("filters", json.dumps(_filters_json(filters))),
        ]
        if dedup is not None:
            fields.append(("dedup", repr(dedup)))
        fields += [("modality", t.modality.value) for t in files]  # type: ignore[union-attr]
        body = self._call_multipart("/api/search/upload", fields, [Path(t.value) for t in files])
        if any("\ufffd" in h["path"] for h in body["hits"]):
            # A file name that is not UTF-8 comes through JSON changed: only the library itself has its bytes.
            raise ServerGone("a result's file name is not UTF-8")
        return [_hit(h) for h in body["hits"]]

    def embed(self, modality: Modality, value: Any) -> np.ndarray:
        if modality is Modality.TEXT:
            body = self._call("POST", "/api/embed", {"modality": "text", "value": value})
        else:
            body = self._call_multipart("/api/embed", [("modality", modality.value)], [Path(value)])
        return np.asarray(body["embedding"], dtype=np.float32)

    def classify(self, files: Sequence[tuple[Modality, Path]], labels: Sequence[str]) -> list[Classification]:
        fields = [("labels", "\n".join(labels))] + [("modality", m.value) for m, _ in files]
        body = self._call_multipart("/api/classify", fields, [p for _, p in files])
        return [Classification(path=str(p), modality=Modality(r["modality"]), label=r["label"],
                               labels=[LabelScore(**s) for s in r["labels"]], error=r["error"])
                for (_, p), r in zip(files, body)]

    # -- HTTP -------------------------------------------------------------------------

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        return self._send(request.Request(self.url + path, data=data, method=method, headers=headers))

    def _call_multipart(self, path: str, fields: list[tuple[str, str]], files: list[Path]) -> Any:
        boundary = uuid.uuid4().hex
        parts: list[bytes] = []
        for name, value in fields:
            parts.append(f'--{boundary}\r\ncontent-disposition: form-data; name="{name}"\r\n\r\n'.encode()
                         + value.encode() + b"\r\n")
        for file in files:
            try:
                content = file.read_bytes()
            except OSError as exc:
                raise MediaError(str(file), exc.strerror or str(exc)) from None
            name = os.path.basename(file).replace('"', "_").replace("\r", "_").replace("\n", "_")
            parts.append(f'--{boundary}\r\ncontent-disposition: form-data; name="file"; filename="{name}"\r\n'
                         f"content-type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self._send(request.Request(self.url + path, data=data, method="POST",
                                          headers={"content-type": f"multipart/form-data; boundary={boundary}"}))

    def _send(self, req: request.Request) -> Any:
        if self.token:
            req.add_header("authorization", f"Bearer {self.token}")
        try:
            with request.urlopen(req, timeout=self.timeout) as response:
                return json.loads(response.read())
        except error.HTTPError as exc:
            try:
                detail = json.loads(exc.read())["detail"]
            except (ValueError, KeyError, TypeError):
                raise ServerGone(f"{self.url} answered {exc.code} without a bindsearch error") from None
            if exc.code >= 500:
                raise BindsearchError(detail) from None
            raise (MediaError(None, detail) if exc.code == 400 else UsageError(detail)) from None
        except (error.URLError, OSError, ValueError) as exc:
            raise ServerGone(f"{self.url} does not answer: {exc}") from None


def find_server(library: str | os.PathLike[str], timeout: float = 2.0) -> ServerClient | None:
    """A client of the server running for the library at ``library``, if its state file names a live one that
    answers for this very library; None otherwise (no server, or a stale file)."""
    record = read_record(Path(library))
    if record is None:
        return None
    client = ServerClient(record.url, record.token, timeout=timeout)
    try:
        served = client.server()
    except (ServerGone, BindsearchError):
        return None
    if os.path.realpath(str(served.get("library", ""))) != os.path.realpath(library):
        return None
    client.timeout = 300.0
    client.served = served
    return client


def _is_file(term: QueryTerm) -> bool:
    return term.modality not in (None, Modality.TEXT)


def _term_json(term: QueryTerm) -> dict[str, Any]:
    if isinstance(term.value, Like):
        ref = term.value.item
        # A path is the client's: the server, elsewhere in the file system's view, needs it absolute.
        if isinstance(ref, str) and not (ref.isdigit() and not os.path.exists(ref)):
            ref = os.path.abspath(ref)
        return {"like": ref, "weight": float(term.weight)}
    return {"modality": "text", "value": term.value, "weight": float(term.weight)}


def _filters_json(filters: Filters) -> dict[str, Any]:
    # Relative path filters are the client's current folder's: resolved here, not in the server's.
    return {"paths": [p for _, p in path_patterns(filters.paths)], "tags": list(filters.tags),
            "min_size": filters.min_size, "max_size": filters.max_size, "after": filters.modified_after,
            "before": filters.modified_before, "min_duration": filters.min_duration,
            "max_duration": filters.max_duration}


def _hit(data: dict[str, Any]) -> Hit:
    return Hit(rank=data["rank"], score=data["score"], calibrated=data["calibrated"],
               modality=Modality(data["modality"]), path=data["path"], id=data["id"], start=data["start"],
               end=data["end"], tags=tuple(data["tags"]))
