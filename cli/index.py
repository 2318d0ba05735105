"""``bindsearch index PATH...``"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from bindsearch.indexer import IndexObserver, check_arguments

import bindsearch
from bindsearch.classify import parse_labels
from bindsearch.errors import UsageError
from bindsearch.fewshot import read_examples
from bindsearch.modality import Modality
from bindsearch.paths import display_path
from bindsearch.windows import WindowSettings

from .console import EXIT_FAILED_FILES, EXIT_INTERRUPTED, err, handles_errors
from .options import ForcedModalityOption, JsonOption, LibraryOption, SpaceOption
from .progress import RichIndexProgress
from .render import index_summary, print_json

_SHOWN_ERRORS = 5


@handles_errors
def index(
    paths: Annotated[
        list[str], typer.Argument(metavar="PATH", help="Files and folders to index (folders recursively).")
    ],
    library: LibraryOption = None,
    space: SpaceOption = None,
    modality: ForcedModalityOption = None,
    batch_size: Annotated[int, typer.Option("--batch-size", metavar="N", help="Files per model call.", min=1)] = 32,
    workers: Annotated[
        int | None,
        typer.Option("--workers", metavar="N", min=0,
                     help="Worker processes. On a CPU each reads and embeds batches with its share of the cores "
                          "(default: one per core up to four cores, at most eight); on a GPU they only read "
                          "(default: one per core but one). 0: none, everything in turn in this process."),
    ] = None,
    ray: Annotated[
        bool,
        typer.Option("--ray", help="Read and embed on Ray: a Ray started on this machine for the run, or the "
                                   "cluster --ray-address names. Every node must read the files under the same "
                                   "paths (shared storage)."),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", metavar="ADDRESS",
                     help='The Ray cluster to run on ("auto", ray://HOST:10001); implies --ray.'),
    ] = None,
    window: Annotated[
        float | None,
        typer.Option("--window", metavar="SECONDS",
                     help="Cut long audio and video into time windows this long (a multiple of 2; 0: no windows). "
                          "Remembered by the library; changing it reads its audio and video again. [default: 6]"),
    ] = None,
    hop: Annotated[
        float | None,
        typer.Option("--hop", metavar="SECONDS",
                     help="Start a window every SECONDS (a multiple of 2, at most the window). [default: 2]"),
    ] = None,
    auto_tag: Annotated[
        str | None,
        typer.Option("--auto-tag", metavar="LABELS",
                     help='Tag every new item with the closest of these labels (zero-shot): "dog,car,bird".'),
    ] = None,
    auto_tag_examples: Annotated[
        str | None,
        typer.Option("--auto-tag-examples", metavar="DIR",
                     help="Tag every new item with the most probable label learned from these examples "
                          "(few-shot): a folder with one sub-folder of example files per label."),
    ] = None,
    auto_tag_min: Annotated[
        float | None,
        typer.Option("--auto-tag-min", metavar="P",
                     help="With --auto-tag or --auto-tag-examples: tag an item only when its best label's "
                          "probability is at least P (0 to 1); an item no label fits gets none."),
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Read again the files that failed before, changed or not.")
    ] = False,
    errors: Annotated[bool, typer.Option("--errors", "-e", help="List every failed file with its reason.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Index media files into the library: new and changed files are embedded, missing ones removed.

    Exit status: 0 when every file was indexed, 3 when some failed, 2 for bad
    arguments or an unusable library or space.
    """
    _, forced = check_arguments(paths, modality, auto_tag_min=auto_tag_min)  # before the library (or a download)
    if forced is not None and not forced.builtin:
        _check_added_modality(forced, library, space)
    if auto_tag is not None and auto_tag_examples is not None:
        raise UsageError("give one of --auto-tag LABELS and --auto-tag-examples DIR, not both")
    ray_at = ray_address if ray_address is not None else ("local" if ray else None)
    if ray_at is not None and workers is not None:
        raise UsageError("give one of --ray and --workers: on Ray, the cluster's cores are the workers")
    if auto_tag_min is not None and auto_tag is None and auto_tag_examples is None:
        raise UsageError("--auto-tag-min goes with --auto-tag LABELS or --auto-tag-examples DIR")
    labels = parse_labels(auto_tag) if auto_tag is not None else None
    if auto_tag_examples is not None:
        read_examples(auto_tag_examples)  # a bad folder is said before the library is touched
    tagging = {"auto_tag": labels, "auto_tag_examples": auto_tag_examples, "auto_tag_min": auto_tag_min, "ray": ray_at}
    with bindsearch.open_library(library, space, create=True) as lib:
        windows = window_settings(lib.window_settings, window, hop) if window is not None or hop is not None else None
        show_progress = err.is_terminal and not as_json
        observer: IndexObserver = RichIndexProgress() if show_progress else IndexObserver()
        if isinstance(observer, RichIndexProgress):
            with observer:
                report = lib.index(paths, modality=modality, observer=observer, batch_size=batch_size,
                                   workers=workers, windows=windows, retry_failed=retry_failed, **tagging)
        else:
            report = lib.index(paths, modality=modality, observer=observer, batch_size=batch_size, workers=workers,
                               windows=windows, retry_failed=retry_failed, **tagging)
    if as_json:
        print_json(report)
    else:
        err.print(index_summary(report), highlight=False)
        print_failures(report.errors, None if errors else _SHOWN_ERRORS, " (--errors lists them all)")
    if report.interrupted:
        err.print("[yellow]interrupted:[/] what was done is saved; run the same command again to finish")
        raise typer.Exit(EXIT_INTERRUPTED)
    if report.failed:
        raise typer.Exit(EXIT_FAILED_FILES)


def print_failures(failures: list, limit: int | None, more: str = "") -> None:
    """The failed files with their reasons on stderr, the first ``limit`` of them (None: all)."""
    shown = failures if limit is None else failures[:limit]
    for e in shown:
        err.print(f"  [red]failed[/] {_esc(display_path(e.path))}: {_esc(e.reason)}")
    if len(shown) < len(failures):
        err.print(f"  ... and {len(failures) - len(shown)} more{more}")


def window_settings(current: WindowSettings, seconds: float | None, hop: float | None) -> WindowSettings:
    """The library's window settings with the options given; UsageError for values that do not fit."""
    try:
        return current.changed(seconds, hop)
    except ValueError as exc:
        raise UsageError(f"--window/--hop: {exc}") from None


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _check_added_modality(modality: Modality, library: Path | None, space: str | None) -> None:
    """A modality that is not built in must be one the space adds: checked on the space's spec (no weights,
    no download), the library's own when no space is given."""
    from bindsearch.errors import LibraryError
    from bindsearch.modality import check_modality

    if space is not None:
        chosen = bindsearch.load_space(space)
    else:
        try:
            with bindsearch.open_library(library) as lib:
                chosen = lib.space
        except LibraryError:
            chosen = bindsearch.load_space(None)
    check_modality(modality.value, chosen.modalities, f"space {chosen.name}")
