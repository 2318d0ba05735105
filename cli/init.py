"""``bindsearch init LIBRARY.json --metadata URL --vectors URI``"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import bindsearch

from .console import handles_errors, out
from .options import SpaceOption


@handles_errors
def init(
    file: Annotated[Path, typer.Argument(metavar="LIBRARY.json", help="The library file to write.")],
    metadata: Annotated[
        str,
        typer.Option("--metadata", metavar="URL", show_default=False,
                     help="Metadata database: postgresql://user@host/database, or sqlite:///file."),
    ],
    vectors: Annotated[
        str,
        typer.Option("--vectors", metavar="URI", show_default=False,
                     help="Where vectors live: faiss:///folder (vector files and FAISS indexes in a local "
                          "folder), milvus:///path/file.db (Milvus Lite) or milvus://host:19530 (a Milvus server)."),
    ],
    space: SpaceOption = None,
) -> None:
    """Make a library whose metadata lives in a database, and write the file that names it.

    Example: bindsearch init media.json --metadata postgresql://me@db-host/media --vectors faiss:///data/media

    Every command then takes the file as --library media.json (or BINDSEARCH_LIBRARY=media.json). A
    database that holds a library already is joined, not replaced. With vectors in a Milvus server, index
    runs on several machines may write the library at once.
    """
    with bindsearch.init_library(file, metadata, vectors, space) as lib:
        details = lib.info(max_failed=0)
    out.print(f"library {details.path}: metadata {details.metadata}, vectors {details.vectors}, "
              f"space {details.space} ({sum(details.counts.values())} items)", markup=False, highlight=False)
