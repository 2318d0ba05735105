"""The ``bindsearch`` command: index, query, embed, info, tag, classify, remove, export, duplicates, watch."""

from __future__ import annotations

from typing import Annotated

import typer

from bindsearch import __version__

from . import classify as classify_cmd
from . import duplicates as duplicates_cmd
from . import embed as embed_cmd
from . import export as export_cmd
from . import index as index_cmd
from . import info as info_cmd
from . import query as query_cmd
from . import remove as remove_cmd
from . import tag as tag_cmd
from . import watch as watch_cmd
from .console import setup_logging

app = typer.Typer(
    name="bindsearch",
    help="Find media by meaning across modalities: index files, then query with text, images and more.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"bindsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    setup_logging()


app.command("index")(index_cmd.index)
app.command("query")(query_cmd.query)
app.command("embed")(embed_cmd.embed)
app.command("info")(info_cmd.info)
app.command("tag")(tag_cmd.tag)
app.command("classify")(classify_cmd.classify)
app.command("remove")(remove_cmd.remove)
app.command("export")(export_cmd.export)
app.command("duplicates")(duplicates_cmd.duplicates)
app.command("watch")(watch_cmd.watch)


def main() -> None:
    """Console-script entry point."""
    app()
