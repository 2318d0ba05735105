"""The ``bindsearch`` command: index, query, embed, info, optimize, tag, classify, remove, export, import, duplicates,
watch, serve, bind."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from bindsearch import __version__
from bindsearch.errors import BindsearchError
from bindsearch.spaces.precision import check_precision_variable
from bindsearch.spaces.torch_runtime import check_device

from . import bind as bind_cmd
from . import classify as classify_cmd
from . import duplicates as duplicates_cmd
from . import embed as embed_cmd
from . import export as export_cmd
from . import import_vectors as import_cmd
from . import index as index_cmd
from . import info as info_cmd
from . import init as init_cmd
from . import optimize as optimize_cmd
from . import query as query_cmd
from . import remove as remove_cmd
from . import serve as serve_cmd
from . import tag as tag_cmd
from . import watch as watch_cmd
from .console import CommandLineError, fail, fail_on_usage, quiet_broken_pipe, setup_logging
from .help import Command

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
    try:  # before any work, not when a model first loads
        if os.environ.get("BINDSEARCH_DEVICE"):
            check_device(os.environ["BINDSEARCH_DEVICE"])
        check_precision_variable()
    except BindsearchError as exc:
        raise fail(str(exc), exc.exit_code) from None


app.command("init", cls=Command)(init_cmd.init)
app.command("index", cls=Command)(index_cmd.index)
app.command("query", cls=Command)(query_cmd.query)
app.command("embed", cls=Command)(embed_cmd.embed)
app.command("info", cls=Command)(info_cmd.info)
app.command("optimize", cls=Command)(optimize_cmd.optimize)
app.command("tag", cls=Command)(tag_cmd.tag)
app.command("classify", cls=Command)(classify_cmd.classify)
app.command("remove", cls=Command)(remove_cmd.remove)
app.command("export", cls=Command)(export_cmd.export)
app.command("import", cls=Command)(import_cmd.import_vectors)
app.command("duplicates", cls=Command)(duplicates_cmd.duplicates)
app.command("watch", cls=Command)(watch_cmd.watch)
app.command("serve", cls=Command)(serve_cmd.serve)
app.command("bind", cls=Command)(bind_cmd.bind)


def main() -> None:
    """Console-script entry point: typer's own usage errors become one ``error:`` line too."""
    try:
        status = app(prog_name="bindsearch", standalone_mode=False)
        sys.stdout.flush()  # here, so that a reader gone away is noticed while it can still be handled
    except CommandLineError as exc:
        status = fail_on_usage(exc).exit_code
    except typer.Abort:
        status = 130
    except BrokenPipeError:
        status = quiet_broken_pipe().exit_code
    sys.exit(status or 0)
