"""``bindsearch serve``"""

from __future__ import annotations

import errno
import os
import socket
import webbrowser
from typing import Annotated

import typer

from bindsearch.errors import UsageError

from .console import err, handles_errors
from .options import LibraryOption, SpaceOption


@handles_errors
def serve(
    library: LibraryOption = None,
    host: Annotated[str, typer.Option("--host", metavar="ADDRESS",
                                      help="Address to listen on. Any but loopback needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-P", metavar="PORT", help="Port to listen on (0: any free one).")
                    ] = 8000,
    token: Annotated[str | None, typer.Option("--token", metavar="TOKEN", envvar="BINDSEARCH_TOKEN",
                                              show_default=False,
                                              help="Require this token: 'Authorization: Bearer TOKEN', or open "
                                                   "/?token=TOKEN once in a browser.")] = None,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", metavar="MB",
                                                 help="Refuse uploads larger than this (413).")] = 100.0,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in a web browser.")] = False,
    space: SpaceOption = None,
) -> None:
    """Serve the library over HTTP: a web page to search it, and a JSON API (docs at /docs).

    \b
    Examples:
      bindsearch serve --library /tmp/demo --open
      bindsearch serve --host 0.0.0.0 --token "$(python -c 'import secrets; print(secrets.token_urlsafe())')"

    While it runs, query, embed and classify on this machine send their work
    to it (no model to load: milliseconds); --no-server makes them work alone.
    """
    import uvicorn

    from bindsearch.server import create_app, server_settings
    from bindsearch.server.settings import new_token
    from bindsearch.server.state_file import ServerRecord, remove_record, write_record

    settings = server_settings(library, space, host, port, token, max_upload_mb)
    sock = _listen(settings.host, settings.port)
    app = create_app(settings)  # the library opens here: a missing or damaged one fails before serving
    lib = app.state.bindsearch.library
    bound = sock.getsockname()[1]
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{shown_host}:{bound}/"
    # The CLI on this machine finds the server through this file; with no token of the server's own, it
    # gets one that the server accepts but does not ask for.
    record = write_record(lib.path, ServerRecord(url=url, pid=os.getpid(), token=settings.token or new_token(),
                                                 library=str(lib.location)))
    link = f"{url}?token={settings.token}" if settings.token else url
    err.print(f"serving library {lib.location} at [bold]{link}[/] (API docs at {url}docs); Ctrl+C stops")
    if open_browser:
        webbrowser.open(link)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                            lifespan="on")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if record is not None:
            remove_record(lib.path)
        sock.close()


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the library and model load so that a taken port fails at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not left 0: asyncio turns Nagle's algorithm off only on sockets that say they are TCP,
    # and with it on, a reply written as headers then body waits out the client's delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "the port is taken (another server runs there?)" if exc.errno == errno.EADDRINUSE else \
            exc.strerror or str(exc)
        raise UsageError(f"cannot listen on {host}:{port}: {reason}") from None
    except (socket.gaierror, UnicodeError) as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
