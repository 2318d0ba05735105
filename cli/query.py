"""``bindsearch query``"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

import bindsearch

from .console import err, handles_errors
from .options import ImageOption, JsonOption, LibraryOption, SpaceOption, TextOption
from .render import print_hits, print_json
from .terms import terms_from_options


@handles_errors
def query(
    text: TextOption = None,
    image: ImageOption = None,
    target: Annotated[
        Optional[list[str]],
        typer.Option("--target", "-T", help="Modality to search (repeatable), or 'all' (the default)."),
    ] = None,
    top: Annotated[int, typer.Option("--top", "-k", help="Number of results.", min=1)] = 10,
    library: LibraryOption = None,
    space: SpaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search the library with text and/or images; several terms are summed into one query."""
    terms = terms_from_options(text, image)
    with bindsearch.open_library(library, space) as lib:
        hits = lib.search(terms, targets=target, k=top)
    if as_json:
        print_json(hits)
    elif hits:
        print_hits(hits)
    else:
        err.print("no results: the library holds nothing of the target modalities")
