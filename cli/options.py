"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

LibraryOption = Annotated[
    Optional[Path],
    typer.Option(
        "--library",
        "-L",
        envvar="BINDSEARCH_LIBRARY",
        help="Library folder (default: a folder in your user data directory).",
        show_default=False,
    ),
]

SpaceOption = Annotated[
    Optional[str],
    typer.Option(
        "--space",
        "-s",
        help="Space: a built-in name such as openclip:ViT-B-32/laion2b_s34b_b79k, or a space file (.json).",
        show_default=False,
    ),
]

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")]

TextOption = Annotated[
    Optional[list[str]], typer.Option("--text", "-t", help="Text query term (repeatable).", show_default=False)
]
ImageOption = Annotated[
    Optional[list[Path]], typer.Option("--image", "-i", help="Image file query term (repeatable).", show_default=False)
]
