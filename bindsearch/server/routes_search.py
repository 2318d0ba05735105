"""``/api/search``, ``/api/search/upload``, ``/api/embed`` and ``/api/classify``: the search API's own calls,
with uploaded files as query terms."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from ..classify import parse_labels
from ..errors import BindsearchError, MediaError, UsageError
from ..jsonable import to_jsonable
from ..modality import Modality, modality_from_path, sniff_format
from ..search import QueryTerm
from .errors import HTTPError
from .queries import (
    FiltersIn,
    MayRead,
    SearchIn,
    TermIn,
    expression_terms,
    filters_of,
    targets_of,
    term_of,
    terms_of,
)
from .responses import hit_json
from .state import ServerState, State
from .uploads import UploadedForm, read_upload

router = APIRouter(prefix="/api")
_TERM_LIST = TypeAdapter(list[TermIn])
T = TypeVar("T")


class SearchOut(BaseModel):
    hits: list[dict[str, Any]]
    took_ms: float


class EmbedIn(BaseModel):
    modality: str = "text"
    value: str


@router.post("/search", response_model=SearchOut, summary="Search with query terms or an expression")
def search(body: SearchIn, state: State) -> dict[str, Any]:
    started = time.perf_counter()
    with state.using_library() as lib:
        terms = terms_of(body, lib.may_read, lib.space.modalities)
        return _search(lib, body, terms, started)


@router.post("/search/upload", response_model=SearchOut, summary="Search with uploaded files as query terms")
async def search_upload(request: Request, state: State) -> dict[str, Any]:
    """Multipart: ``file`` parts (a ``modality`` field per file, in order, empty to tell it from the file),
    and the fields ``text`` (an expression), ``terms`` (more terms, as ``/api/search`` takes them, in JSON),
    ``weights`` (one per file), ``targets`` (``image,audio`` or ``all``), ``k``,
    ``offset``, ``windows``, ``exact`` and ``filters`` (JSON)."""
    started = time.perf_counter()
    form = await read_upload(request, state.settings.max_upload_bytes)
    try:
        body = _search_form(form)

        def run() -> dict[str, Any]:
            with state.using_library() as lib:
                terms = expression_terms(body.expression or "", lib.may_read) + _in_order(
                    body.terms or [], _file_terms(form), lib.may_read)
                return _search(lib, body, terms, started)

        return await run_in_threadpool(_naming_uploads, form, run)
    finally:
        form.cleanup()


@router.post("/embed", summary="The unit vector of one input: JSON text, or one uploaded file")
async def embed(request: Request, state: State) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("multipart/"):
        form = await read_upload(request, state.settings.max_upload_bytes)
        try:
            terms = _file_terms(form)
            if len(terms) != 1 or form.field("text"):
                raise UsageError("embed takes exactly one input")
            term = terms[0]
            vector = await run_in_threadpool(_naming_uploads, form, lambda: _embed(state, term))
        finally:
            form.cleanup()
    else:
        try:
            given = EmbedIn.model_validate_json(await request.body())
        except ValidationError as exc:
            raise HTTPError(f"the body must be {{\"modality\": \"text\", \"value\": ...}}: {exc.errors()[0]['msg']}"
                            ) from None
        if Modality.parse(given.modality) is not Modality.TEXT:
            raise UsageError("upload a file to embed it (JSON takes text only)")
        term = QueryTerm.text(given.value)
        vector = await run_in_threadpool(_embed, state, term)
    return {"modality": term.modality.value, "dim": int(vector.shape[0]), "embedding": vector.tolist()}


@router.post("/classify", summary="Zero-shot labels of uploaded files")
async def classify(request: Request, state: State) -> list[dict[str, Any]]:
    """Multipart: ``file`` parts (a ``modality`` field per file, as for search) and ``labels`` (comma- or
    newline-separated)."""
    form = await read_upload(request, state.settings.max_upload_bytes)
    try:
        labels = parse_labels(form.field("labels") or "")
        if not form.files:
            raise UsageError("upload at least one file to label")
        inputs = [(t.modality, t.value) for t in _file_terms(form)]

        def run() -> list[Any]:
            with state.using_library() as lib:
                results = lib.classify(inputs, labels)
            out = []
            for upload, result in zip(form.files, results):
                error = result.error.replace(str(upload.path), upload.filename) if result.error else None
                out.append(to_jsonable(result) | {"path": upload.filename, "error": error})
            return out

        return await run_in_threadpool(_naming_uploads, form, run)
    finally:
        form.cleanup()


def _search(lib: Any, body: SearchIn, terms: list[QueryTerm], started: float) -> dict[str, Any]:
    if not terms:
        raise UsageError("give at least one query term: text, a file, or an item to find more like")
    hits = lib.search(terms, targets=targets_of(body.targets), k=body.k, offset=body.offset,
                      windows=body.windows, filters=filters_of(body.filters), dedup=body.dedup, exact=body.exact)
    return {"hits": [hit_json(h) for h in hits], "took_ms": round((time.perf_counter() - started) * 1000, 2)}


def _embed(state: ServerState, term: QueryTerm) -> Any:
    with state.using_library() as lib:
        return lib.space.embed(term.modality, term.value)


def _search_form(form: UploadedForm) -> SearchIn:
    """The form's fields as the JSON search request they stand for."""
    def number(name: str, kind: Callable[[str], T]) -> T | None:
        value = form.field(name)
        if value is None or value.strip() == "":
            return None
        try:
            return kind(value)
        except ValueError:
            raise UsageError(f"form field {name}: not a number: {value!r}") from None

    targets = form.field("targets")
    filters = form.field("filters")
    try:
        filters_in = FiltersIn.model_validate_json(filters) if filters else FiltersIn()
        more = _TERM_LIST.validate_json(form.field("terms") or "[]")
        return SearchIn(
            expression=form.field("text"), terms=more,
            targets=None if not targets else "all" if targets.strip() == "all" else
            [t.strip() for t in targets.split(",") if t.strip()],
            k=number("k", int) or 10, offset=number("offset", int) or 0,
            windows=_flag(form.field("windows")), exact=_flag(form.field("exact")),
            filters=filters_in, dedup=number("dedup", float))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ()))
        raise UsageError(f"form field {where or 'filters'}: {error.get('msg', 'invalid')}") from None


def _in_order(given: list[TermIn], files: list[QueryTerm], may_read: MayRead) -> list[QueryTerm]:
    """The JSON terms in their order, a term that names an upload standing for that file (weighted by the term),
    then the files no term names. The order is the client's: a sum in another order rounds otherwise."""
    terms: list[QueryTerm] = []
    named: set[int] = set()
    for term in given:
        if term.upload is None:
            terms.append(term_of(term, may_read))
            continue
        if term.upload >= len(files):
            raise UsageError(f"a term names upload {term.upload}, but {len(files)} files were sent")
        named.add(term.upload)
        file = files[term.upload]
        terms.append(QueryTerm(file.modality, file.value, term.weight))
    return terms + [f for n, f in enumerate(files) if n not in named]


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "on", "yes")


def _file_terms(form: UploadedForm) -> list[QueryTerm]:
    """One term per uploaded file: its modality from its ``modality`` field, else its name, else its content."""
    modalities = form.fields.get("modality", [])
    weights = [w.strip() for w in (form.field("weights") or "").split(",")] if form.field("weights") else []
    if weights and len(weights) != len(form.files):
        raise UsageError(f"form field weights: give one weight per file ({len(form.files)}), got {len(weights)}")
    terms = []
    for n, upload in enumerate(form.files):
        given = modalities[n].strip() if n < len(modalities) else ""
        modality = Modality.parse(given) if given else _modality_of(upload.path, upload.filename)
        if not given and modality is Modality.VIDEO and upload.content_type.startswith("audio/"):
            modality = Modality.AUDIO  # a recording in a video container (a browser's audio/webm)
        try:
            weight = float(weights[n]) if weights else 1.0
        except ValueError:
            raise UsageError(f"form field weights: not a number: {weights[n]!r}") from None
        if upload.size == 0:
            raise MediaError(upload.filename, "the uploaded file is empty")
        terms.append(QueryTerm.file(modality, upload.path, weight))
    return terms


def _modality_of(path: Any, filename: str) -> Modality:
    modality = modality_from_path(str(path))
    if modality is None:
        with open(path, "rb") as f:
            found = sniff_format(f.read(64))
        modality = found[1] if found is not None else None
    if modality is None:
        raise UsageError(f"cannot tell the modality of the upload {filename}: send a modality field with it")
    return modality


def _naming_uploads(form: UploadedForm, run: Callable[[], T]) -> T:
    """``run()``, with any error's message naming an upload by the client's name, not its temporary path."""
    try:
        return run()
    except BindsearchError as exc:
        message = str(exc)
        for upload in form.files:
            message = message.replace(str(upload.path), upload.filename)
        if message == str(exc):
            raise
        error = MediaError(None, message) if isinstance(exc, MediaError) else UsageError(message)
        raise error from None
