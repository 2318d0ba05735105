"""Query terms from the command line: the expression arguments and one option per modality."""

from __future__ import annotations

from bindsearch.errors import UsageError
from bindsearch.loaders.common import read_head
from bindsearch.modality import Modality
from bindsearch.search import QueryTerm, parse_expression, parse_term, split_weight

MODALITY_FLAGS = "--text, --image, --audio, --video, --depth, --thermal or --imu"


def terms_from_options(
    text: list[str] | None = None,
    *,
    image: list[str] | None = None,
    audio: list[str] | None = None,
    video: list[str] | None = None,
    depth: list[str] | None = None,
    thermal: list[str] | None = None,
    imu: list[str] | None = None,
    expression: list[str] | None = None,
    minus: list[str] | None = None,
    like: list[str] | None = None,
) -> list[QueryTerm]:
    """Every term the options give. A value may start with a weight (``2:a dog``, ``0.5:beach.jpg``);
    a query file must exist and be readable."""
    terms = parse_expression(expression or [])
    for value in text or []:
        weight, rest = split_weight(value, lambda _: False)
        terms.append(QueryTerm.text(rest, weight))
    files = {Modality.IMAGE: image, Modality.AUDIO: audio, Modality.VIDEO: video, Modality.DEPTH: depth,
             Modality.THERMAL: thermal, Modality.IMU: imu}
    for modality, values in files.items():
        for value in values or []:
            weight, path = split_weight(value)
            terms.append(QueryTerm.file(modality, path, weight))
    terms += [parse_term(value, -1.0) for value in minus or []]
    for value in like or []:
        weight, ref = split_weight(value)
        terms.append(QueryTerm.like(ref, weight))  # an id, or a path (a file named like a number wins)
    for term in terms:
        if term.modality not in (None, Modality.TEXT):
            read_head(str(term.value))  # one clear line for a missing or unreadable query file
    if not terms:
        raise UsageError(f"give at least one query term: {MODALITY_FLAGS}, --like, or an expression")
    return terms
