"""Query terms from command-line options: one option per modality."""

from __future__ import annotations

from pathlib import Path

from bindsearch.errors import UsageError
from bindsearch.loaders.common import read_head
from bindsearch.modality import Modality
from bindsearch.search import QueryTerm

MODALITY_FLAGS = "--text, --image, --audio, --video, --depth, --thermal or --imu"


def terms_from_options(
    text: list[str] | None = None,
    files: dict[Modality, list[Path] | None] | None = None,
) -> list[QueryTerm]:
    """One term per --text and per file option; a query file must exist and be readable."""
    terms = [QueryTerm.text(t) for t in text or []]
    for modality, paths in (files or {}).items():
        for path in paths or []:
            read_head(str(path))  # one clear line for a missing or unreadable query file
            terms.append(QueryTerm.file(modality, path))
    if not terms:
        raise UsageError(f"give at least one query term: {MODALITY_FLAGS}")
    return terms
