"""``bindsearch optimize``"""

from __future__ import annotations

import bindsearch

from .console import handles_errors, out
from .options import JsonOption, LibraryOption
from .render import human_bytes, print_indexes, print_json


@handles_errors
def optimize(library: LibraryOption = None, as_json: JsonOption = False) -> None:
    """Build the approximate indexes now, and give back the disk space of unused vectors.

    An index run builds an index anew by itself once it has grown past its last
    build by a share; optimize does it whenever anything changed since, and turns
    an index that shrank below the exact limit back into exact search. The vectors
    of removed and re-embedded items stay in the vector files until optimize frees
    their space.
    """
    with bindsearch.open_library(library) as lib:
        report = lib.optimize()
    if as_json:
        print_json(report)
        return
    print_indexes(report.indexes)
    out.print(f"\nfreed {human_bytes(report.freed_bytes)} of unused vectors" if report.freed_bytes
              else "\nno unused vectors to free")
