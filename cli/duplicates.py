"""``bindsearch duplicates``"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

import bindsearch
from bindsearch.paths import display_path
from bindsearch.search.duplicates import DuplicateGroup

from .console import err, handles_errors, out, stdout_is_terminal
from .options import JsonOption, LibraryOption
from .render import print_json


@handles_errors
def duplicates(
    threshold: Annotated[
        float,
        typer.Option("--threshold", metavar="COSINE",
                     help="Items whose vectors have at least this cosine with a group's first item join it."),
    ] = 0.95,
    modality: Annotated[
        list[str] | None,
        typer.Option("--modality", "-m", metavar="MODALITY", show_default=False,
                     help="Only this modality (repeatable; default: all)."),
    ] = None,
    library: LibraryOption = None,
    as_json: JsonOption = False,
) -> None:
    """List groups of near-identical items (copies, re-encodings, bursts of photos), the one to keep first.

    \b
    Example: bindsearch duplicates --threshold 0.97 --modality image

    The one kept is the longest (audio, video), then the largest file, then
    the oldest, then the first by path. Nothing is deleted.
    """
    with bindsearch.open_library(library) as lib:
        groups = lib.duplicates(threshold, modality or None)
    if as_json:
        print_json(groups)
    else:
        print_groups(groups)


def print_groups(groups: list[DuplicateGroup]) -> None:
    """Per group its items, the kept one first: a table, or tab-separated lines (group, keep/copy, score, path)."""
    if not groups:
        err.print("no duplicates")
        return
    if not stdout_is_terminal():
        for n, group in enumerate(groups, 1):
            for i, item in enumerate(group.items):
                role = "keep" if i == 0 else "copy"
                print(f"{n}\t{role}\t{item.score:.4f}\t{group.modality.value}\t{display_path(item.path)}")
        return
    table = Table(show_edge=False, header_style="bold")
    for name, justify in (("group", "right"), ("", "left"), ("cosine", "right"), ("modality", "left"),
                          ("size", "right"), ("path", "left")):
        table.add_column(name, justify=justify, overflow="fold" if name == "path" else None)
    for n, group in enumerate(groups, 1):
        for i, item in enumerate(group.items):
            table.add_row(str(n) if i == 0 else "", "keep" if i == 0 else "copy", f"{item.score:.4f}",
                          group.modality.value, str(item.size), escape(display_path(item.path)))
    out.print(table)
    err.print(f"{len(groups)} group{'s' if len(groups) != 1 else ''}, "
              f"{sum(len(g.items) - 1 for g in groups)} near-copies")
