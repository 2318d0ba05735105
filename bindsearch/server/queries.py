"""A search request as the server receives it (JSON or a form), turned into the search API's own terms,
filters and targets. Files the client names are checked here, before anything reads them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import UsageError
from ..filters import Filters, parse_date, parse_size
from ..loaders.common import read_head
from ..modality import Modality
from ..search import QueryTerm, parse_expression, parse_targets
from .errors import Forbidden

MAX_K = 1000
MAX_OFFSET = 10_000

# Asks the library whether a query may name a file on this machine (``Library.may_read``).
MayRead = Callable[[str], bool]


class TermIn(BaseModel):
    """One query term: ``{"modality": "text", "value": "a dog"}``, a file on the server
    (``{"modality": "audio", "value": "/indexed/folder/bark.wav"}``), or an item (``{"like": 42}``)."""

    model_config = ConfigDict(extra="forbid")
    modality: str | None = Field(None, description="text (the default), image, audio, video, depth, thermal, imu")
    value: str | None = Field(None, description="the text, or the absolute path of a file under an indexed folder")
    like: int | str | None = Field(None, description="an indexed item's id (or path): its stored vector")
    upload: int | None = Field(None, ge=0, description="/api/search/upload only: the uploaded file at this place "
                                                        "among the files (0 for the first), as the term here")
    weight: float = 1.0


class FiltersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paths: list[str] = []
    tags: list[str] = []
    min_size: int | str | None = None
    max_size: int | str | None = None
    after: str | float | None = Field(None, description="modified at or after: 2024-05-01, or seconds since 1970")
    before: str | float | None = None
    min_duration: float | None = None
    max_duration: float | None = None


class SearchIn(BaseModel):
    """``terms`` or ``expression`` (the CLI's grammar: ``"2:a dog" + like:42 - "a leash"``)."""

    model_config = ConfigDict(extra="forbid")
    terms: list[TermIn] | None = None
    expression: str | None = None
    targets: list[str] | Literal["all"] | None = None
    k: int = Field(10, ge=1, le=MAX_K)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    filters: FiltersIn = FiltersIn()
    dedup: float | None = Field(None, gt=0, le=1)
    windows: bool = False
    exact: bool = Field(False, description="search every vector exactly, not through an approximate index")


def filters_of(given: FiltersIn) -> Filters:
    """The search's Filters; UsageError (400) for a size or date that cannot be read."""
    def size(value: int | str | None) -> int | None:
        return None if value is None else parse_size(str(value))

    def date(value: str | float | None) -> float | None:
        if value is None or isinstance(value, (int, float)):
            return value
        return parse_date(value)

    return Filters(paths=tuple(given.paths), tags=tuple(given.tags), min_size=size(given.min_size),
                   max_size=size(given.max_size), modified_after=date(given.after),
                   modified_before=date(given.before), min_duration=given.min_duration,
                   max_duration=given.max_duration)


def targets_of(given: Sequence[str] | str | None) -> list[str] | None:
    """The target modalities, checked (UsageError for an unknown one); None for all."""
    if given is None or given == "all":
        return None
    names = [given] if isinstance(given, str) else list(given)
    parse_targets(names)
    return names


def terms_of(request: SearchIn, may_read: MayRead, modalities: Iterable[Modality] | None = None) -> list[QueryTerm]:
    """The request's terms (its expression's, then its list's); Forbidden for a file outside the library."""
    terms: list[QueryTerm] = []
    if request.expression is not None:
        terms += expression_terms(request.expression, may_read)
    for term in request.terms or []:
        terms.append(term_of(term, may_read, modalities))
    return terms


def expression_terms(expression: str, may_read: MayRead) -> list[QueryTerm]:
    """The CLI's grammar; a value is a server-side file only when it is an absolute path to one."""
    if not expression.strip():
        return []
    terms = parse_expression([expression], is_file=lambda v: os.path.isabs(v) and os.path.isfile(v))
    for term in terms:
        if term.modality not in (None, Modality.TEXT):
            check_server_file(str(term.value), may_read)
    return terms


def term_of(term: TermIn, may_read: MayRead, modalities: Iterable[Modality] | None = None) -> QueryTerm:
    if term.upload is not None:
        raise UsageError("a term names an upload only in a search with uploaded files (/api/search/upload)")
    if term.like is not None:
        if term.value is not None or term.modality is not None:
            raise UsageError("a like term names an item only: give like, or modality and value, not both")
        return QueryTerm.like(term.like, term.weight)
    if term.value is None:
        raise UsageError("a query term needs a value (text, or a file's path) or like (an item id)")
    # (checked against the library's space before the file is: a misspelt modality is the first thing to say)
    modality = Modality.parse(term.modality, modalities) if term.modality else Modality.TEXT
    if modality is Modality.TEXT:
        return QueryTerm.text(term.value, term.weight)
    check_server_file(term.value, may_read)
    return QueryTerm.file(modality, term.value, term.weight)


def check_server_file(path: str, may_read: MayRead) -> None:
    """A file a client names on this machine: absolute, under an indexed folder (Forbidden otherwise,
    whether or not it exists), and readable (MediaError with the CLI's reason)."""
    if not os.path.isabs(path):
        raise UsageError(f"a file term names a file on the server by its absolute path, got {path!r} "
                         "(to send a file of your own, upload it)")
    if not may_read(os.path.normpath(path)):
        raise Forbidden(f"{path} is not under a folder this library indexed")
    read_head(path)
