"""``bindsearch remove PATH...``"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

import bindsearch
from bindsearch.library.remove import RemovedItem
from bindsearch.paths import display_path

from .console import err, handles_errors, out, stdout_is_terminal
from .options import JsonOption, LibraryOption
from .render import print_json


@handles_errors
def remove(
    paths: Annotated[
        list[Path], typer.Argument(metavar="PATH", help="Indexed files, or folders (every item under them).")
    ],
    library: LibraryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take files out of the library (a folder: everything under it); the files themselves are not touched.

    Example: bindsearch remove ~/photos/2019/screenshots

    A later index of a folder above them adds them again.
    """
    with bindsearch.open_library(library) as lib:
        removed = lib.remove(paths)
    if as_json:
        print_json(removed)
    else:
        print_removed(removed)


def print_removed(items: list[RemovedItem]) -> None:
    """Each removed item's path and modality, then how many on stderr."""
    for item in items:
        if stdout_is_terminal():
            out.print(f"{escape(display_path(item.path))} [dim]{item.modality}[/]")
        else:
            print(f"{display_path(item.path)}\t{item.modality}")
    err.print(f"removed {len(items)} item{'s' if len(items) != 1 else ''} from the library (files left as they are)")
