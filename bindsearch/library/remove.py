"""Leaving items out of a library: their rows, vectors, windows and tags go; the files stay on disk."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from ..modality import Modality
from .tags import items_at

if TYPE_CHECKING:
    from .writer import LibraryWriter


@dataclass(frozen=True)
class RemovedItem:
    """An item taken out of the library by ``remove`` (its file is untouched)."""

    path: str
    modality: str
    id: int


def remove_items(conn: Connection, writer: LibraryWriter, paths: Sequence[str | os.PathLike[str]]) -> list[RemovedItem]:
    """Remove the items of these files (a folder: every item under it) in one commit of ``writer``.

    Every path is looked up before anything is removed, so a path the library
    holds nothing of (UsageError, naming it) removes nothing at all.
    """
    found = items_at(conn, [os.fspath(p) for p in paths])
    for item_id, _, modality in found:
        writer.remove(item_id, Modality(modality))
    writer.commit()
    return [RemovedItem(path, modality, item_id) for item_id, path, modality in found]
