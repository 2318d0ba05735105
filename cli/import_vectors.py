"""``bindsearch import FILE.npz|FILE.parquet``"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

import bindsearch
from bindsearch.bulk_import import ImportReport, check_space, import_format, read_header, space_for_new_library
from bindsearch.library.config import is_config_path
from bindsearch.library.records import DB_FILE
from bindsearch.paths import default_library_path, display_path

from .console import EXIT_FAILED_FILES, EXIT_INTERRUPTED, err, handles_errors
from .options import JsonOption, LibraryOption, SpaceOption
from .render import print_json

_SHOWN_BAD_ROWS = 5


@handles_errors
def import_vectors(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The file to read: FILE.npz or FILE.parquet.")],
    library: LibraryOption = None,
    space: SpaceOption = None,
    hash_files: Annotated[
        bool,
        typer.Option("--hash", help="Also hash every imported file found here (reads them all), so that a later "
                                    "index knows them when they are moved or copied."),
    ] = False,
    errors: Annotated[bool, typer.Option("--errors", "-e", help="List every skipped row with its reason.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Add vectors computed elsewhere (another machine, a GPU cluster, another library's export) to the library.

    \b
    Examples:
      bindsearch import vectors.npz
      bindsearch import photos.parquet --library ~/photos-library --space imagebind-huge

    The file has the columns path, modality, vector and (optional) tags, as
    export writes them. A library that does not exist yet is made with
    --space, or else with the space the file names (export writes its spec);
    a file that names none needs --space. Vectors of another space (another
    fingerprint) or of another dimension are refused; rows without a usable
    path, modality or vector are skipped and listed. A file found at its path
    is not embedded again by index; one that is not there stays until remove.

    Exit status: 0 when every row was imported, 3 when some were skipped, 2 for
    a file or library that cannot be used, 130 when interrupted (the rows
    imported until then are kept).
    """
    import_format(file)  # a wrong name is said before anything is read
    header = read_header(file)
    folder = (library.expanduser() if library is not None else default_library_path()).absolute()
    chosen: str | bindsearch.Space | None = space
    if not is_config_path(folder) and not (folder / DB_FILE).exists():
        # A new library: the file is refused before the library is made.
        chosen = space_for_new_library(header, space)
        check_space(header, str(folder), chosen.name, chosen.fingerprint, chosen.dim)
    with bindsearch.open_library(library, chosen, create=True) as lib:
        if err.is_terminal and not as_json:
            with _RowProgress() as bar:
                report = lib.import_vectors(file, hash_files=hash_files, progress=bar.update)
        else:
            report = lib.import_vectors(file, hash_files=hash_files)
    if as_json:
        print_json(report)
    else:
        err.print(import_summary(report), highlight=False, markup=False)
        shown = report.bad_rows if errors else report.bad_rows[:_SHOWN_BAD_ROWS]
        for bad in shown:
            where = f" ({escape(display_path(bad.path))})" if bad.path else ""
            err.print(f"  [red]skipped[/] row {bad.row}{where}: {escape(bad.reason)}")
        if len(shown) < report.skipped:
            more = "" if errors else " (--errors lists them)"
            err.print(f"  ... and {report.skipped - len(shown)} more{more}")
    if report.interrupted:
        err.print("[yellow]interrupted:[/] the rows imported so far are kept; run the same command again to finish")
        raise typer.Exit(EXIT_INTERRUPTED)
    if report.skipped:
        raise typer.Exit(EXIT_FAILED_FILES)


def import_summary(report: ImportReport) -> str:
    per = ", ".join(f"{m} {n}" for m, n in report.modalities.items()) or "none"
    text = (f"imported {report.imported} of {report.rows} rows ({per}) from {display_path(report.file)}: "
            f"added {report.added}, updated {report.updated}, skipped {report.skipped} in {report.seconds:.1f} s")
    if report.without_file:
        text += (f"\n{report.without_file} of them name no file on this machine: they are kept until "
                 "bindsearch remove takes them out")
    return text


class _RowProgress:
    """A bar of rows imported, on stderr, gone when the import ends."""

    def __init__(self) -> None:
        self._bar = Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
                             TimeRemainingColumn(), console=err, transient=True)
        self._task = self._bar.add_task("rows", total=None)

    def __enter__(self) -> _RowProgress:
        self._bar.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bar.stop()

    def update(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)
