"""bindsearch: find media by meaning across modalities in one shared embedding space.

    import bindsearch

    with bindsearch.open_library("~/photos-library", create=True) as lib:
        lib.index(["~/Pictures"])
        for hit in lib.search([bindsearch.QueryTerm.text("a dog on a beach")], targets=["image"]):
            print(hit.rank, round(hit.score, 3), hit.path)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Installed, the top-level folders indexer/ and cli/ are mapped into this
# package (see pyproject.toml). Imported straight from a source checkout (the
# repository root on sys.path), they sit beside this folder instead: add the
# root to the package path so that bindsearch.indexer and bindsearch.cli
# resolve the same way.
_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_root, "pyproject.toml")) and os.path.isfile(
    os.path.join(_root, "indexer", "__init__.py")
):
    __path__.append(_root)  # type: ignore[name-defined]

import numpy as np

from .api import Library
from .bind import BindReport, bind
from .classify import Classification, LabelScore, classify
from .errors import (
    BindsearchError,
    LibraryError,
    LibraryLockedError,
    MediaError,
    ReadOnlyLibraryError,
    SpaceError,
    SpaceMismatchError,
    UsageError,
)
from .fewshot import ExampleLabels, classify_examples
from .indexer import IndexObserver, IndexReport, index_paths
from .library import FileError, IndexInfo, LibraryInfo, OptimizeReport
from .modality import Modality
from .search import Filters, Hit, QueryTerm, search
from .spaces import DEFAULT_SPACE, Encoder, Space, load_space

__version__ = "0.1.0"


def open_library(
    path: str | os.PathLike[str] | None = None,
    space: str | os.PathLike[str] | dict[str, Any] | Space | None = None,
    *,
    create: bool = False,
) -> Library:
    """Open (or with ``create=True`` create) a library; see ``Library.open``."""
    return Library.open(path, space, create=create)


def init_library(
    path: str | os.PathLike[str],
    metadata: str,
    vectors: str,
    space: str | os.PathLike[str] | None = None,
) -> Library:
    """Write a library file at ``path`` (``.json``) naming a metadata database (a SQLAlchemy URL:
    ``postgresql://user@host/db``, ``sqlite:///file``) and a vector store (``faiss:///folder``), and create
    the library it names (or join the one that database holds already). Open it later with
    ``open_library(path)``. Nothing is left behind when the library cannot be made."""
    import shutil

    from .library.config import write_config

    file = Path(path).expanduser()
    config = write_config(file, metadata, vectors, None if space is None else os.fspath(space))
    made = [p for p in config.local_paths() if not os.path.lexists(p)]
    try:
        return Library.open(config.file, space, create=True)
    except BaseException:
        file.unlink(missing_ok=True)
        for leftover in made:  # (what this call made: a folder, an empty SQLite file)
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        raise


def embed(
    modality: Modality | str,
    value: Any,
    space: str | os.PathLike[str] | dict[str, Any] | Space | None = None,
) -> np.ndarray:
    """Embed one value (text, or a file path) in a space: a float32 unit vector of shape (dim,)."""
    return load_space(space).embed(Modality.parse(modality), value)


__all__ = [
    "DEFAULT_SPACE",
    "BindReport",
    "BindsearchError",
    "Classification",
    "Encoder",
    "ExampleLabels",
    "FileError",
    "Filters",
    "Hit",
    "IndexInfo",
    "IndexObserver",
    "IndexReport",
    "LabelScore",
    "Library",
    "LibraryError",
    "LibraryInfo",
    "LibraryLockedError",
    "MediaError",
    "Modality",
    "OptimizeReport",
    "QueryTerm",
    "ReadOnlyLibraryError",
    "Space",
    "SpaceError",
    "SpaceMismatchError",
    "UsageError",
    "bind",
    "classify",
    "classify_examples",
    "embed",
    "index_paths",
    "init_library",
    "load_space",
    "open_library",
    "search",
]
