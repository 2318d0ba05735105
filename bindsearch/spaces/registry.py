"""Space kinds by name, and turning a user's space argument into a Space."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from ..errors import SpaceError
from ..regular_files import read_small_file
from .base import Space


class SpaceKind(Protocol):
    """What a model family provides to be usable as a space."""

    kind: str

    @classmethod
    def from_spec(cls, spec: dict[str, Any], base_dir: Path | None = None) -> Space:
        """Build from a space-file object (``{"model": kind, ...}``)."""
        ...

    @classmethod
    def from_name(cls, name: str) -> Space | None:
        """Build from a built-in name, or return None if the name is not of this kind."""
        ...

    @classmethod
    def name_help(cls) -> str:
        """How this kind's built-in names look, for error messages."""
        ...


SPACE_KINDS: dict[str, type[SpaceKind]] = {}


def register_space_kind(cls: type[SpaceKind]) -> type[SpaceKind]:
    """Class decorator: make a model family available under its ``kind`` name."""
    SPACE_KINDS[cls.kind] = cls
    return cls


# The space a new library gets when none is named.
DEFAULT_SPACE = "imagebind-huge"


def default_space_name() -> str:
    """``BINDSEARCH_SPACE`` if set, else the built-in default."""
    return os.environ.get("BINDSEARCH_SPACE") or DEFAULT_SPACE


def load_space(spec: str | os.PathLike[str] | dict[str, Any] | Space | None = None) -> Space:
    """Turn a space argument into a Space.

    ``spec`` may be a Space (returned as is), a spec dict, a path to a space file
    (JSON), a built-in name such as ``openclip:ViT-B-32/laion2b_s34b_b79k``, or
    None for the default space. Nothing is downloaded or loaded here.
    """
    _ensure_kinds_registered()
    if spec is None:
        spec = default_space_name()
    if isinstance(spec, Space):
        return spec
    if isinstance(spec, dict):
        return space_from_spec(spec)
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.suffix.lower() == ".json" or path.is_file():
        return space_from_file(path)
    for kind in SPACE_KINDS.values():
        space = kind.from_name(text)
        if space is not None:
            return space
    forms = "; ".join(kind.name_help() for kind in SPACE_KINDS.values())
    raise SpaceError(f"unknown space '{text}': give a space file (.json) or a built-in name ({forms})")


# A space file is a few lines of JSON; anything much larger is not one (and is not read without end).
MAX_SPACE_FILE_BYTES = 1 << 20


def space_from_file(path: Path) -> Space:
    """Read a space file; relative paths in it are relative to the file's folder."""
    try:
        data = json.loads(read_small_file(path, MAX_SPACE_FILE_BYTES).decode("utf-8"))
    except FileNotFoundError:
        raise SpaceError(f"space file not found: {path}") from None
    except OSError as exc:
        raise SpaceError(f"cannot read space file {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpaceError(f"space file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SpaceError(f"space file {path} must hold a JSON object such as {{\"model\": \"openclip\", ...}}")
    return space_from_spec(data, base_dir=path.resolve().parent, origin=str(path))


def space_from_spec(
    spec: dict[str, Any], base_dir: Path | None = None, origin: str = "space spec", *, stored: bool = False
) -> Space:
    """Build a space from a spec dict, dispatching on its ``model`` field.

    ``stored``: the spec is a library's own (written from a space that was
    checked when the library was made). A kind may then build the space
    lazily, with a ``from_stored_spec(spec)`` class method, so that opening a
    library loads and imports nothing it does not use.
    """
    _ensure_kinds_registered()
    kind_name = spec.get("model")
    kind = SPACE_KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        known = ", ".join(sorted(SPACE_KINDS))
        raise SpaceError(f"{origin}: \"model\" must be one of: {known} (got {kind_name!r})")
    from_stored = getattr(kind, "from_stored_spec", None) if stored else None
    if from_stored is not None:
        return from_stored(spec)
    return kind.from_spec(spec, base_dir)


_registered = False


def _ensure_kinds_registered() -> None:
    # Importing a kind's module registers it; the imports are deferred so that
    # importing bindsearch does not import torch or open_clip.
    global _registered
    if not _registered:
        from . import bound, imagebind, openclip  # noqa: F401

        _registered = True


