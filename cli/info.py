"""``bindsearch info``"""

from __future__ import annotations

import bindsearch

from .console import handles_errors
from .options import JsonOption, LibraryOption
from .render import print_info, print_json


@handles_errors
def info(library: LibraryOption = None, as_json: JsonOption = False) -> None:
    """Show the library's path, space, counts per modality, failed files and size on disk."""
    with bindsearch.open_library(library) as lib:
        details = lib.info()
    if as_json:
        print_json(details)
    else:
        print_info(details)
