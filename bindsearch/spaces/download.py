"""Downloading checkpoints: resumable, size-checked, with a progress bar on a terminal."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import SpaceError

_CHUNK = 1 << 20


class DownloadNotFound(SpaceError):
    """The server has no file at that address (HTTP 404)."""


def download(url: str, dest: Path, *, what: str, offline_hint: str) -> Path:
    """Fetch ``url`` into ``dest`` unless it is already there; returns ``dest``.

    Bytes go to ``dest.part`` first; a later call resumes from there with an
    HTTP range request, and only a file of the size the server announced is
    renamed into place. Any failure raises one SpaceError that names ``what``
    and ends with ``offline_hint`` (how to do without the download).
    """
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "bindsearch"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if offset and response.status != 206:
                offset = 0  # the server ignored the range: start over
            total = _total_size(response, offset)
            with open(part, "ab" if offset else "wb") as out, _Progress(what, total, offset) as progress:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    progress.advance(len(chunk))
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and total_is_complete(part, url):
            pass  # the part file already holds everything
        else:
            error = DownloadNotFound if exc.code == 404 else SpaceError
            raise error(f"cannot download {what} from {url} (HTTP {exc.code} {exc.reason}); {offline_hint}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = str(getattr(exc, "reason", None) or exc)
        if part.exists() and part.stat().st_size:
            reason += "; the partial download is kept and resumed next time"
        raise SpaceError(f"cannot download {what} from {url} ({reason}); {offline_hint}") from None
    else:
        size = part.stat().st_size
        if total is not None and size != total:
            raise SpaceError(
                f"download of {what} stopped at {size:,} of {total:,} bytes; run again to resume, or {offline_hint}"
            )
    os.replace(part, dest)
    return dest


def total_is_complete(part: Path, url: str) -> bool:
    """After a 416 (range not satisfiable): whether the part file is already the whole file."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=60) as response:
            length = response.headers.get("Content-Length")
    except (urllib.error.URLError, OSError):
        return False
    return length is not None and part.exists() and part.stat().st_size == int(length)


def _total_size(response: object, offset: int) -> int | None:
    headers = response.headers  # type: ignore[attr-defined]
    content_range = headers.get("Content-Range")
    if content_range and "/" in content_range:
        tail = content_range.rsplit("/", 1)[1]
        if tail.isdigit():
            return int(tail)
    length = headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


class _Progress:
    """A rich progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, what: str, total: int | None, done: int) -> None:
        self._bar = None
        if sys.stderr.isatty():
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

            self._bar = Progress(
                "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(), transient=True,
            )
            self._task = self._bar.add_task(f"downloading {what}", total=total, completed=done)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)
