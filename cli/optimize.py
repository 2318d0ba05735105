"""``bindsearch optimize``"""

from __future__ import annotations

import bindsearch

from .console import handles_errors
from .options import JsonOption, LibraryOption
from .render import print_indexes, print_json


@handles_errors
def optimize(library: LibraryOption = None, as_json: JsonOption = False) -> None:
    """Build the approximate indexes now, so that every vector is in one again.

    An index run does this by itself when an index has grown past its last build
    by a share; optimize does it whenever anything changed since, and turns an
    index that shrank below the exact limit back into exact search.
    """
    with bindsearch.open_library(library) as lib:
        indexes = lib.optimize()
    if as_json:
        print_json(indexes)
    else:
        print_indexes(indexes)
