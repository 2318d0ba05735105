"""The space a file to import names in full: what a new library made for the file is bound to.

An exported file carries its space's spec (the JSON a library stores to rebuild its space) beside the
space's fingerprint. A new library made from the spec alone could be of another model than the one the
file's vectors came from (the spec edited, or its checkpoint file replaced since), so the spec's space
must have the fingerprint the file records before a library is made of it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import SpaceError, SpaceMismatchError, UsageError
from ..spaces import Space, load_space
from ..spaces.registry import space_from_spec
from .source import FileHeader

_PASS_SPACE = "pass --space with the space its vectors were made in"


def _download_named(value: object) -> str | None:
    """A URL in the spec other than the built-in ImageBind checkpoint's, or None."""
    from ..spaces.imagebind import HUGE_URL

    if isinstance(value, str):
        return value if value.startswith(("http://", "https://")) and value != HUGE_URL else None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return next((url for url in map(_download_named, items) if url is not None), None)


def file_space(header: FileHeader) -> Space:
    """The space ``header``'s file names by its spec, checked against the fingerprint the file records.

    UsageError for a file without a spec, or with one that is not a usable space (not JSON, an unknown
    model, a checkpoint not on this machine); SpaceMismatchError when the spec's space has another
    fingerprint than the file records. Relative paths in the spec are taken from the file's folder.
    """
    file = header.path
    if header.space_spec is None:
        named = f" (it names space {header.space} but not its spec)" if header.space else ""
        raise UsageError(f"cannot import {file} into a new library: the file does not say which space its vectors "
                         f"are in{named}; {_PASS_SPACE}")
    try:
        spec = json.loads(header.space_spec)
    except ValueError as exc:
        raise UsageError(f"cannot import {file} into a new library: its space spec is not JSON ({exc}); "
                         f"{_PASS_SPACE}") from None
    if not isinstance(spec, dict):
        raise UsageError(f"cannot import {file} into a new library: its space spec is not a JSON object; {_PASS_SPACE}")
    url = _download_named(spec)
    if url is not None:  # a file's spec must not make this machine fetch from an address of its choosing
        raise UsageError(f"cannot import {file} into a new library: its space spec names a checkpoint to download "
                         f"({url}); {_PASS_SPACE}")
    origin = f"the space spec of {file}"
    try:
        space = space_from_spec(spec, base_dir=Path(os.path.abspath(file)).parent, origin=origin)
        fingerprint = space.fingerprint  # (reads the checkpoint it names, which must be here)
    except SpaceError as exc:
        raise UsageError(f"cannot import {file} into a new library of the space it names ({exc}); "
                         f"{_PASS_SPACE}") from None
    if header.fingerprint is not None and fingerprint != header.fingerprint:
        raise SpaceMismatchError(
            f"cannot import {file} into a new library: the space its spec names ({space.name}) has fingerprint "
            f"{fingerprint}, the file records {header.fingerprint} for its vectors (the spec or its checkpoint "
            f"changed since the export); {_PASS_SPACE}"
        )
    return space


def space_for_new_library(header: FileHeader, space: str | None) -> Space:
    """The space of a library made for the file: ``space`` (a spec or name, as ``--space`` takes), else the
    one the file names in full, else BINDSEARCH_SPACE for a file that names none. Never the built-in
    default: vectors of an unnamed space would be taken for its own."""
    if space is not None:
        return load_space(space)
    if header.space_spec is None and os.environ.get("BINDSEARCH_SPACE"):
        return load_space(None)
    return file_space(header)
