"""The small file a running server leaves in its library (``serve.json``: its address, process and token),
so that ``query``, ``embed`` and ``classify`` on the same machine send their work to it instead of loading
the model. Readable by its user only; a file whose process is gone, or whose server does not answer for
this library, is ignored."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..processes import process_alive

STATE_FILE = "serve.json"


@dataclass(frozen=True)
class ServerRecord:
    url: str
    pid: int
    token: str
    library: str


def write_record(library: Path, record: ServerRecord) -> Path | None:
    """Write the record (mode 0600, replaced atomically); None when the library folder cannot be written."""
    path = Path(library) / STATE_FILE
    temporary = path.with_name(f".{STATE_FILE}.{os.getpid()}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(record), f)
        os.replace(temporary, path)
    except OSError:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        return None
    return path


def read_record(library: Path) -> ServerRecord | None:
    """The record of a server of this library whose process is alive; None for none, or a stale one."""
    try:
        with open(Path(library) / STATE_FILE) as f:
            data = json.load(f)
        record = ServerRecord(url=str(data["url"]), pid=int(data["pid"]), token=str(data["token"]),
                              library=str(data["library"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if process_alive(record.pid) else None


def remove_record(library: Path) -> None:
    """Remove the record if it is this process's."""
    path = Path(library) / STATE_FILE
    try:
        with open(path) as f:
            if int(json.load(f).get("pid", -1)) != os.getpid():
                return
        os.unlink(path)
    except (OSError, ValueError, AttributeError):
        pass
