"""``bindsearch query``"""

from __future__ import annotations

from typing import Annotated

import typer

import bindsearch
from bindsearch.errors import UsageError
from bindsearch.search import Filters, parse_date, parse_size, parse_targets

from .console import err, handles_errors
from .options import (
    AudioOption,
    DepthOption,
    ImageOption,
    ImuOption,
    JsonOption,
    LibraryOption,
    SpaceOption,
    TextOption,
    ThermalOption,
    VideoOption,
)
from .remote import NoServerOption, running_server
from .render import print_hits, print_json, print_paths
from .terms import terms_from_options

_FILTERS = "Filters"


@handles_errors
def query(
    expression: Annotated[
        list[str] | None,
        typer.Argument(metavar="TERM", show_default=False,
                       help="Query terms joined by + and -, each [W:][MODALITY:]VALUE: a file (its modality told "
                            "by its name) or text. Example: \"2:a dog\" + ./beach.jpg - \"a leash\"."),
    ] = None,
    text: TextOption = None,
    image: ImageOption = None,
    audio: AudioOption = None,
    video: VideoOption = None,
    depth: DepthOption = None,
    thermal: ThermalOption = None,
    imu: ImuOption = None,
    minus: Annotated[
        list[str] | None,
        typer.Option("--minus", "-x", metavar="TERM", show_default=False,
                     help="A term to subtract: a file or text, as in the expression (repeatable)."),
    ] = None,
    like: Annotated[
        list[str] | None,
        typer.Option("--like", metavar="PATH_OR_ID", show_default=False,
                     help="An indexed item's stored vector as a term; the item, and any file with the same "
                          "content (a symbolic link to it, a byte-identical copy), are left out of the results "
                          "(repeatable)."),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-T", metavar="MODALITY",
                     help="Modality to search (repeatable), or 'all' (the default)."),
    ] = None,
    top: Annotated[int, typer.Option("--top", "-k", metavar="N", help="Number of results.", min=1)] = 10,
    windows: Annotated[
        bool,
        typer.Option("--windows", "-w",
                     help="List the matching moments of long audio and video one by one, not only the best one "
                          "per file (overlapping windows of a file merged into one result)."),
    ] = False,
    path: Annotated[
        list[str] | None,
        typer.Option("--path", "-p", metavar="PATTERN", show_default=False, rich_help_panel=_FILTERS,
                     help="Only files under this folder or matching this glob ('*.jpg', '~/photos/2023*'); "
                          "repeatable: any may match."),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", metavar="TAG", show_default=False, rich_help_panel=_FILTERS,
                     help="Only items with this tag (repeatable: all of them)."),
    ] = None,
    min_size: Annotated[str | None, typer.Option("--min-size", metavar="SIZE", rich_help_panel=_FILTERS,
                                                 help="Only files of at least SIZE (bytes; 20k, 1.5MB, 2GiB).")] = None,
    max_size: Annotated[str | None, typer.Option("--max-size", metavar="SIZE", rich_help_panel=_FILTERS,
                                                 help="Only files of at most SIZE.")] = None,
    after: Annotated[str | None, typer.Option("--after", metavar="DATE", rich_help_panel=_FILTERS,
                                              help="Only files modified at or after DATE (2024-05-01, "
                                                   "2024-05-01T13:30; local time).")] = None,
    before: Annotated[str | None, typer.Option("--before", metavar="DATE", rich_help_panel=_FILTERS,
                                               help="Only files modified at or before DATE.")] = None,
    min_duration: Annotated[float | None, typer.Option("--min-duration", metavar="SECONDS", rich_help_panel=_FILTERS,
                                                       help="Only audio and video at least this long.")] = None,
    max_duration: Annotated[float | None, typer.Option("--max-duration", metavar="SECONDS", rich_help_panel=_FILTERS,
                                                       help="Only audio and video at most this long.")] = None,
    dedup: Annotated[
        float | None,
        typer.Option("--dedup", metavar="THRESHOLD",
                     help="Collapse results whose vectors have a cosine of at least THRESHOLD (0.95: near-copies) "
                          "into the best of them."),
    ] = None,
    exact: Annotated[
        bool,
        typer.Option("--exact", help="Search every vector exactly, not through an approximate index (slower on "
                                     "a large library; the answer approximate search is measured against)."),
    ] = False,
    paths_only: Annotated[bool, typer.Option("--paths", help="Print only the paths, one per line.")] = False,
    null: Annotated[
        bool, typer.Option("--null", "-0", help="Print only the paths, each followed by a NUL byte (for xargs -0).")
    ] = False,
    library: LibraryOption = None,
    space: SpaceOption = None,
    as_json: JsonOption = False,
    no_server: NoServerOption = False,
) -> None:
    """Search the library with query terms of any modality, summed into one query.

    \b
    Examples:
      bindsearch query --audio dog.wav --target image
      bindsearch query "2:a dog" + ./beach.jpg - "a leash"
      bindsearch query --like photos/cat.jpg --target all --dedup 0.95

    Each term is normalised, weighted (W: prefix, default 1; - subtracts) and
    summed, and the sum normalised again. A term names a file (of the modality
    its name tells; force one with image:, audio:, video:, depth:, thermal:,
    imu:), an indexed item (like:PATH_OR_ID), or is text (text: forces it).
    Several targets give one list ranked by calibrated score (raw cosines are
    not comparable across modalities). A long audio or video file is found by
    its best time window, whose start and end are shown; --windows lists every
    matching moment (overlapping windows merged). While a bindsearch serve of
    the library runs, the query is sent to it (no model to load).
    """
    if as_json and (paths_only or null):
        raise UsageError(f"choose one of --json and {'--null' if null else '--paths'}")
    terms = terms_from_options(text, image=image, audio=audio, video=video, depth=depth, thermal=thermal, imu=imu,
                               expression=expression, minus=minus, like=like)
    filters = Filters(
        paths=tuple(path or ()), tags=tuple(tag or ()),
        min_size=parse_size(min_size) if min_size is not None else None,
        max_size=parse_size(max_size) if max_size is not None else None,
        modified_after=parse_date(after) if after is not None else None,
        modified_before=parse_date(before) if before is not None else None,
        min_duration=min_duration, max_duration=max_duration,
    )
    parse_targets(target)  # an unknown modality is refused before the library is opened
    hits = _remote_hits(library, no_server or space is not None, terms, target=target, k=top, windows=windows,
                        filters=filters, dedup=dedup, exact=exact)
    if hits is None:
        with bindsearch.open_library(library, space) as lib:
            hits = lib.search(terms, targets=target, k=top, windows=windows, filters=filters, dedup=dedup,
                              exact=exact)
    if as_json:
        print_json(hits)
    elif hits and (paths_only or null):
        print_paths(hits, b"\0" if null else b"\n")
    elif hits:
        print_hits(hits)
    else:  # said on stderr: a pipe reading --paths gets no stray line
        err.print("no results: nothing in the target modalities passes the query's filters"
                  if filters.on_metadata else "no results: the library holds nothing of the target modalities")


def _remote_hits(library, no_server: bool, terms, *, target, k, windows, filters, dedup, exact):
    """The hits as the library's running server gives them; None when there is none (or it went away)."""
    server = running_server(library, no_server)
    if server is None:
        return None
    from bindsearch.server.client import ServerGone

    try:
        return server.search(terms, targets=target, k=k, windows=windows, filters=filters, dedup=dedup, exact=exact)
    except ServerGone:
        return None
