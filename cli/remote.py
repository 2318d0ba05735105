"""Whether a command sends its work to a running ``bindsearch serve`` of its library (no model to load) or
does it in process: the server is used when one answers for the library and nothing asks otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bindsearch.paths import default_library_path

NoServerOption = Annotated[
    bool,
    typer.Option("--no-server", help="Work in this process even when a bindsearch serve of the library runs."),
]


def running_server(library: Path | None, no_server: bool):
    """A client of the library's running server, or None (asked not to, none runs, or a stale state file)."""
    if no_server:
        return None
    from bindsearch.library.config import local_folder
    from bindsearch.server.client import find_server

    folder = local_folder(library if library is not None else default_library_path())
    return find_server(folder) if folder.is_dir() else None
