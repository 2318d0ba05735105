"""``/api/items/{id}``: an item's details, its file (with Range, for seeking) and its thumbnail, and its tags.

Items are named only by id: no path a client sends reaches the file system here. An id that is not a
number, or names no embedded item, is 404.
"""

from __future__ import annotations

import mimetypes
import os
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from ..errors import UsageError
from ..library.records import ItemDetails
from .errors import NotFound
from .responses import item_json, text_snippet
from .state import ServerState, State

router = APIRouter(prefix="/api/items")

# Types Python's table may not know, or knows wrongly for media (a .ts is a video here).
_MEDIA_TYPES = {".npy": "application/octet-stream", ".ts": "video/mp2t", ".mkv": "video/x-matroska",
                ".webm": "video/webm", ".flac": "audio/flac", ".opus": "audio/ogg", ".m4a": "audio/mp4",
                ".md": "text/markdown; charset=utf-8", ".txt": "text/plain; charset=utf-8",
                ".csv": "text/csv; charset=utf-8"}
# A served file is shown as what it is and can run nothing on this origin (an indexed .svg or .html).
_MEDIA_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox",
                  "Cache-Control": "private, max-age=60"}


class TagsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    add: list[str] = []
    remove: list[str] = []


def _item(state: ServerState, item_id: str) -> ItemDetails:
    if not item_id.isdigit() or len(item_id) > 19:
        raise NotFound(f"no item {item_id!r}: items are named by their numeric id")
    with state.using_library() as lib:
        try:
            return lib.item(int(item_id))
        except UsageError as exc:
            raise NotFound(str(exc)) from None


@router.get("/{item_id}", summary="An item's file, metadata, tags and time windows")
def item(item_id: str, state: State) -> dict[str, Any]:
    details = _item(state, item_id)
    return item_json(details, text_snippet(details))


@router.get("/{item_id}/media", summary="The item's file (Range requests give 206, so players seek)")
def media(item_id: str, state: State) -> FileResponse:
    details = _item(state, item_id)
    if not os.path.isfile(details.path):
        raise NotFound(f"the file of item {details.id} is gone: {details.path}")
    suffix = os.path.splitext(details.path)[1].lower()
    media_type = _MEDIA_TYPES.get(suffix) or mimetypes.guess_type(details.path)[0] or "application/octet-stream"
    return FileResponse(details.path, media_type=media_type, headers=_MEDIA_HEADERS)


@router.get("/{item_id}/thumbnail", summary="A small picture of the item (WebP), made once and kept")
async def thumbnail(item_id: str, state: State,
                    at: float | None = Query(None, ge=0, le=1e7, description="seconds into the file")) -> Response:
    details = await run_in_threadpool(_item, state, item_id)
    kind = state.library.space.input_kind(details.modality)
    picture = await run_in_threadpool(state.thumbnails.get, details.id, details.path, details.modality, at,
                                      kind=kind)
    return Response(picture.data, media_type=picture.media_type,
                    headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})


@router.post("/{item_id}/tags", summary="Add and remove tags; the item as it is after")
def tags(item_id: str, body: TagsIn, state: State) -> dict[str, Any]:
    details = _item(state, item_id)
    with state.using_library() as lib:
        lib.tag([details.path], add=body.add, remove=body.remove)
    details = _item(state, item_id)
    return item_json(details, text_snippet(details))
