"""``bindsearch embed``"""

from __future__ import annotations

from typing import Annotated

import typer

import bindsearch
from bindsearch.errors import LibraryError, UsageError

from .console import handles_errors
from .options import JsonOption, LibraryOption, SpaceOption
from .remote import NoServerOption, running_server
from .render import print_json
from .terms import terms_from_options


def _input(flag: str, short: str | None, metavar: str, what: str) -> typer.models.OptionInfo:
    """One input option. Taken as a list all the same, so that a second value is refused, not dropped."""
    names = (flag, short) if short else (flag,)
    return typer.Option(*names, metavar=metavar, help=f"{what} to embed (one input in all).", show_default=False)


@handles_errors
def embed(
    term: Annotated[list[str] | None, typer.Argument(
        metavar="[MODALITY:]VALUE", show_default=False,
        help="The input as a query term: a file (its modality told by its name), MODALITY:FILE (any modality "
             "of the space, a bound one too: vibration:run.csv) or text.")] = None,
    text: Annotated[list[str] | None, _input("--text", "-t", "TEXT", "Text")] = None,
    image: Annotated[list[str] | None, _input("--image", "-i", "FILE", "Image file")] = None,
    audio: Annotated[list[str] | None, _input("--audio", "-a", "FILE", "Audio file")] = None,
    video: Annotated[list[str] | None, _input("--video", "-v", "FILE", "Video file")] = None,
    depth: Annotated[list[str] | None, _input("--depth", None, "FILE", "Depth map file")] = None,
    thermal: Annotated[list[str] | None, _input("--thermal", None, "FILE", "Thermal image file")] = None,
    imu: Annotated[list[str] | None, _input("--imu", None, "FILE", "IMU recording file")] = None,
    space: SpaceOption = None,
    library: LibraryOption = None,
    as_json: JsonOption = False,
    no_server: NoServerOption = False,
) -> None:
    """Print the unit vector of one input in a space (default: the library's space, if there is a library)."""
    terms = terms_from_options(text, image=image, audio=audio, video=video, depth=depth, thermal=thermal, imu=imu,
                               expression=term)
    if len(terms) != 1:
        raise UsageError("embed takes exactly one input")
    term = terms[0]
    remote = _remote_vector(library, no_server or space is not None, term)
    if remote is not None:
        vector, space_name = remote
    else:
        chosen_space = _space(space, library)
        vector, space_name = chosen_space.embed(term.modality, term.value), chosen_space.name
    payload = {"modality": term.modality.value, "dim": int(vector.shape[0]), "embedding": vector.tolist()}
    if as_json:
        print_json(payload)
    else:
        head = ", ".join(f"{v:.4f}" for v in vector[:6])
        print(f"{term.modality.value} vector, {vector.shape[0]} dims, space {space_name}: [{head}, ...]")


def _space(space: str | None, library) -> bindsearch.Space:
    """--space, else the library's space if there is a library, else the default space."""
    if space is not None:
        return bindsearch.load_space(space)
    try:
        with bindsearch.open_library(library) as lib:
            return lib.space
    except LibraryError:
        return bindsearch.load_space(None)


def _remote_vector(library, no_server: bool, term):
    """The vector and space name from the library's running server; None when there is none."""
    server = running_server(library, no_server)
    if server is None:
        return None
    from bindsearch.server.client import ServerGone

    try:
        return server.embed(term.modality, term.value), str(server.served.get("space"))
    except ServerGone:
        return None
