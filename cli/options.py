"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

LibraryOption = Annotated[
    Path | None,
    typer.Option(
        "--library",
        "-L",
        metavar="PATH",
        envvar="BINDSEARCH_LIBRARY",
        help="Library folder, or library file (.json, see init) (default: a folder in your user data directory).",
        show_default=False,
    ),
]

SpaceOption = Annotated[
    str | None,
    typer.Option(
        "--space",
        "-s",
        metavar="SPACE",
        help="Space: imagebind-huge (the default for new libraries), openclip:ARCH/TAG, or a space file (.json).",
        show_default=False,
    ),
]

ForcedModalityOption = Annotated[
    str | None,
    typer.Option("--modality", "-m", metavar="MODALITY", help="Treat every file found as this modality."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")]

TextOption = Annotated[
    list[str] | None, typer.Option("--text", "-t", metavar="TEXT", help="Text (repeatable).", show_default=False)
]
ImageOption = Annotated[
    list[str] | None,
    typer.Option("--image", "-i", metavar="FILE", help="Image file (repeatable).", show_default=False),
]
AudioOption = Annotated[
    list[str] | None,
    typer.Option("--audio", "-a", metavar="FILE", help="Audio file (repeatable).", show_default=False),
]
VideoOption = Annotated[
    list[str] | None,
    typer.Option("--video", "-v", metavar="FILE", help="Video file (repeatable).", show_default=False),
]
DepthOption = Annotated[
    list[str] | None, typer.Option("--depth", metavar="FILE", help="Depth map file (repeatable).", show_default=False)
]
ThermalOption = Annotated[
    list[str] | None,
    typer.Option("--thermal", metavar="FILE", help="Thermal image file (repeatable).", show_default=False),
]
ImuOption = Annotated[
    list[str] | None,
    typer.Option("--imu", metavar="FILE", help="IMU recording file (repeatable).", show_default=False),
]
