"""What the server sends: the API's dataclasses as ``--json`` prints them, plus the links a page follows."""

from __future__ import annotations

from typing import Any

from ..jsonable import to_jsonable
from ..library.records import ItemDetails
from ..modality import Modality
from ..search import Hit

SNIPPET_CHARS = 400


def media_url(item_id: int) -> str:
    return f"/api/items/{item_id}/media"


def thumbnail_url(item_id: int, at: float | None = None) -> str:
    return f"/api/items/{item_id}/thumbnail" + ("" if at is None else f"?at={at:g}")


def hit_json(hit: Hit) -> dict[str, Any]:
    """A Hit, and where its file and its picture (at the hit's window, for audio and video) are."""
    out = to_jsonable(hit)
    out["media_url"] = media_url(hit.id)
    out["thumbnail_url"] = thumbnail_url(hit.id, hit.start)
    return out


def item_json(item: ItemDetails, snippet: str | None = None) -> dict[str, Any]:
    out = to_jsonable(item)
    out["media_url"] = media_url(item.id)
    out["thumbnail_url"] = thumbnail_url(item.id)
    out["snippet"] = snippet
    return out


def text_snippet(item: ItemDetails) -> str | None:
    """The start of a text item's file, as the text loader reads it (its encoding told); None for other
    modalities or a file that cannot be read now."""
    if item.modality is not Modality.TEXT:
        return None
    from ..errors import MediaError
    from ..loaders.text import load_text

    try:
        text = load_text(item.path, SNIPPET_CHARS * 4)
    except (MediaError, OSError):
        return None
    return text[:SNIPPET_CHARS]
