"""``bindsearch embed``"""

from __future__ import annotations

import bindsearch
from bindsearch.errors import LibraryError, UsageError

from .console import handles_errors
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
from .render import print_json
from .terms import terms_from_options


@handles_errors
def embed(
    text: TextOption = None,
    image: ImageOption = None,
    audio: AudioOption = None,
    video: VideoOption = None,
    depth: DepthOption = None,
    thermal: ThermalOption = None,
    imu: ImuOption = None,
    space: SpaceOption = None,
    library: LibraryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the unit vector of one input in a space (default: the library's space, if there is a library)."""
    terms = terms_from_options(text, image=image, audio=audio, video=video, depth=depth, thermal=thermal, imu=imu)
    if len(terms) != 1:
        raise UsageError("embed takes exactly one input")
    term = terms[0]
    chosen = space
    if chosen is None:
        try:
            with bindsearch.open_library(library) as lib:
                chosen_space = lib.space
        except LibraryError:
            chosen_space = bindsearch.load_space(None)
    else:
        chosen_space = bindsearch.load_space(chosen)
    vector = chosen_space.embed(term.modality, term.value)
    payload = {"modality": term.modality.value, "dim": int(vector.shape[0]), "embedding": vector.tolist()}
    if as_json:
        print_json(payload)
    else:
        head = ", ".join(f"{v:.4f}" for v in vector[:6])
        print(f"{term.modality.value} vector, {vector.shape[0]} dims, space {chosen_space.name}: [{head}, ...]")
