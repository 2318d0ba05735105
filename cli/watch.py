"""``bindsearch watch PATH...``"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from bindsearch.indexer import check_arguments
from bindsearch.indexer.watch import WatchRun

import bindsearch
from bindsearch.paths import display_path

from .console import EXIT_INTERRUPTED, err, handles_errors
from .index import print_failures
from .options import ForcedModalityOption, JsonOption, LibraryOption, SpaceOption
from .render import index_summary, print_json

_SHOWN_ERRORS = 5


@handles_errors
def watch(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH", help="Files and folders to keep indexed.")],
    debounce: Annotated[
        float,
        typer.Option("--debounce", metavar="SECONDS", min=0,
                     help="Wait until no change came for this long, then index what changed."),
    ] = 2.0,
    library: LibraryOption = None,
    space: SpaceOption = None,
    modality: ForcedModalityOption = None,
    as_json: JsonOption = False,
) -> None:
    """Index files and folders, then keep the library up to date as files appear, change, move and disappear.

    \b
    Example: bindsearch watch ~/photos ~/recordings --debounce 5

    First a rescan, as index does; then, when changes stop coming for
    --debounce seconds, an index run over what changed. Runs are as safe to
    interrupt as index, and between runs the library is free for queries and
    other commands. Stops on Ctrl-C (exit status 130) and SIGTERM (exit status
    0), committing a run under way first.
    """
    check_arguments(paths, modality)
    stop = threading.Event()

    def terminate(signum: int, frame: FrameType | None) -> None:
        stop.set()
        raise KeyboardInterrupt  # interrupts a run under way, which commits what it did

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        with bindsearch.open_library(library, space, create=True) as lib:
            err.print(f"watching {', '.join(display_path(str(p)) for p in paths)} "
                      "(Ctrl-C or SIGTERM stops)", markup=False, highlight=False)
            lib.watch(paths, debounce=debounce, stop=stop, modality=modality,
                      on_run=lambda run: _print_run(run, as_json),
                      on_error=lambda message: err.print(f"[yellow]warning:[/] {_esc(message)}"))
    except KeyboardInterrupt:
        err.print("stopped watching: everything indexed so far is saved")
        raise typer.Exit(0 if stop.is_set() else EXIT_INTERRUPTED) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_run(run: WatchRun, as_json: bool) -> None:
    """One line per run (a JSON object with --json), then its failed files."""
    if as_json:
        print_json(run)
        sys.stdout.flush()  # a reader of the pipe sees each run as it ends
        return
    what = "rescan" if run.rescan else ", ".join(display_path(p) for p in run.paths)
    err.print(f"{what}: {index_summary(run.report).splitlines()[0]}", markup=False, highlight=False)
    print_failures(run.report.errors, _SHOWN_ERRORS)


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)
