"""``bindsearch query``"""

from __future__ import annotations

from typing import Annotated

import typer

import bindsearch

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
from .render import print_hits, print_json
from .terms import terms_from_options


@handles_errors
def query(
    text: TextOption = None,
    image: ImageOption = None,
    audio: AudioOption = None,
    video: VideoOption = None,
    depth: DepthOption = None,
    thermal: ThermalOption = None,
    imu: ImuOption = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target", "-T", metavar="MODALITY", help="Modality to search (repeatable), or 'all' (the default)."
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", "-k", metavar="N", help="Number of results.", min=1)] = 10,
    windows: Annotated[
        bool,
        typer.Option("--windows", "-w",
                     help="List the time windows of long audio and video one by one, not only the best one per file."),
    ] = False,
    library: LibraryOption = None,
    space: SpaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search the library with query terms of any modality; several terms are summed into one query.

    Example: bindsearch query --audio dog.wav --target image

    A long audio or video file is found by its best time window, whose start
    and end are shown; --windows lists every matching window.
    """
    terms = terms_from_options(text, image=image, audio=audio, video=video, depth=depth, thermal=thermal, imu=imu)
    with bindsearch.open_library(library, space) as lib:
        hits = lib.search(terms, targets=target, k=top, windows=windows)
    if as_json:
        print_json(hits)
    elif hits:
        print_hits(hits)
    else:
        err.print("no results: the library holds nothing of the target modalities")
