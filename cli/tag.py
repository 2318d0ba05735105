"""``bindsearch tag PATH... --add TAG --remove TAG``"""

from __future__ import annotations

from typing import Annotated

import typer

import bindsearch

from .console import handles_errors
from .options import JsonOption, LibraryOption
from .render import print_json, print_tagged


@handles_errors
def tag(
    paths: Annotated[
        list[str], typer.Argument(metavar="PATH", help="Indexed files, or folders (every item under them).")
    ],
    add: Annotated[
        list[str] | None,
        typer.Option("--add", metavar="TAG", show_default=False, help="Tag to add (repeatable)."),
    ] = None,
    remove: Annotated[
        list[str] | None,
        typer.Option("--remove", metavar="TAG", show_default=False, help="Tag to remove (repeatable)."),
    ] = None,
    library: LibraryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add or remove tags on indexed files, then print their tags (with neither option: just print them).

    Example: bindsearch tag ~/photos/2023/holiday --add holiday --add family

    Tags stay with an item when its file changes or moves; query --tag filters on them.
    """
    with bindsearch.open_library(library) as lib:
        items = lib.tag(paths, add=add or (), remove=remove or ())
    if as_json:
        print_json(items)
    else:
        print_tagged(items)
