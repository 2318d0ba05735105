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
    *,
    image: list[Path] | None = None,
    audio: list[Path] | None = None,
    video: list[Path] | None = None,
    depth: list[Path] | None = None,
    thermal: list[Path] | None = None,
    imu: list[Path] | None = None,
) -> list[QueryTerm]:
    """One term per --text and per file option; a query file must exist and be readable."""
    terms = [QueryTerm.text(t) for t in text or []]
    files = {Modality.IMAGE: image, Modality.AUDIO: audio, Modality.VIDEO: video, Modality.DEPTH: depth,
             Modality.THERMAL: thermal, Modality.IMU: imu}
    for modality, paths in files.items():
        for path in paths or []:
            read_head(str(path))  # one clear line for a missing or unreadable query file
            terms.append(QueryTerm.file(modality, path))
    if not terms:
        raise UsageError(f"give at least one query term: {MODALITY_FLAGS}")
    return terms
