"""The FastAPI application: the routes of ``routes_search`` and ``routes_items``, the library's info, and the
page (static files shipped in the package; nothing is fetched from elsewhere)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..jsonable import to_jsonable
from . import routes_items, routes_search
from .auth import AccessControl
from .body_limit import BodyLimit
from .errors import install_error_handlers
from .settings import ServerSettings
from .state import THUMBNAIL_DIR, ServerState, State

if TYPE_CHECKING:
    from ..api import Library

STATIC = Path(__file__).parent / "static"
# The page runs only its own scripts, talks only to this server, and loads pictures and sound from it
# (or from files the user drops: blob: and data: URLs).
_PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                "style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; object-src 'none'; "
                "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def create_app(settings: ServerSettings, library: Library | None = None) -> FastAPI:
    """The server's app over ``library`` (opened from ``settings`` when not given, and then closed with the
    app). The model loads a tower at a time, when a request first needs it, and stays loaded."""
    from ..api import Library
    from ..thumbnails import ThumbnailCache

    owned = library is None
    lib = library if library is not None else Library.open(settings.library, settings.space)
    app = FastAPI(title="bindsearch", version=__version__,
                  description="Search media by meaning across modalities: the HTTP API of `bindsearch serve`.")
    app.state.bindsearch = ServerState(settings, lib, ThumbnailCache(Path(lib.path) / THUMBNAIL_DIR))
    if owned:
        app.router.on_shutdown.append(lib.close)
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(AccessControl, settings=settings)  # (added last: runs first)
    app.include_router(routes_search.router)
    app.include_router(routes_items.router)

    @app.get("/api/info", summary="What `bindsearch info --json` prints")
    def info(state: State) -> dict[str, Any]:
        with state.using_library() as held:
            return to_jsonable(held.info())

    @app.get("/api/server", summary="Which library and space this server serves (cheap: no database work)")
    def server(state: State) -> dict[str, Any]:
        return {"library": str(state.library.location), "space": state.library.space_name, "version": __version__}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Content-Security-Policy": _PAGE_POLICY, "Cache-Control": "no-cache",
                                     "X-Content-Type-Options": "nosniff"})

    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    return app
