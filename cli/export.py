"""``bindsearch export FILE.npz|FILE.parquet``"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import bindsearch
from bindsearch.export import export_format
from bindsearch.paths import display_path

from .console import err, handles_errors
from .options import JsonOption, LibraryOption
from .render import print_json


@handles_errors
def export(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The file to write: FILE.npz or FILE.parquet.")],
    modality: Annotated[
        list[str] | None,
        typer.Option("--modality", "-m", metavar="MODALITY", show_default=False,
                     help="Only items of this modality (repeatable; default: all)."),
    ] = None,
    path: Annotated[
        list[str] | None,
        typer.Option("--path", "-p", metavar="PATTERN", show_default=False,
                     help="Only files under this folder or matching this glob, as query --path (repeatable)."),
    ] = None,
    library: LibraryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the library's vectors and metadata to a file: columns path, modality, vector, tags.

    \b
    Examples:
      bindsearch export vectors.npz
      bindsearch export photos.parquet --modality image --path ~/photos

    A .npz loads without pickle (tags: a JSON list per row; space,
    fingerprint and space_spec: 0-d arrays); a .parquet (needs pyarrow) has
    vector as a fixed-size list of float32 and the space in its metadata.
    The space's spec lets import make a new library of the same space.
    """
    export_format(file)  # a wrong name is said before the library is opened
    with bindsearch.open_library(library) as lib:
        report = lib.export(file, modalities=modality or None, paths=tuple(path or ()))
    if as_json:
        print_json(report)
    else:
        per = ", ".join(f"{m} {n}" for m, n in report.modalities.items()) or "none"
        err.print(f"exported {report.items} items ({per}), {report.dim} dims of {report.space}, "
                  f"to {display_path(report.path)}", highlight=False, markup=False)
