"""Query terms from command-line options."""

from __future__ import annotations

from pathlib import Path

from bindsearch.errors import UsageError
from bindsearch.loaders.common import read_head
from bindsearch.modality import Modality
from bindsearch.search import QueryTerm


def terms_from_options(text: list[str] | None, image: list[Path] | None) -> list[QueryTerm]:
    """One term per --text and --image; a query file must exist and be readable."""
    terms = [QueryTerm.text(t) for t in text or []]
    for path in image or []:
        read_head(str(path))  # one clear line for a missing or unreadable query file
        terms.append(QueryTerm.file(Modality.IMAGE, path))
    if not terms:
        raise UsageError("give at least one query term: --text TEXT or --image FILE")
    return terms
