"""One writer at a time: an advisory lock on a file in the library folder.

The kernel drops the lock when the holding process dies, even by SIGKILL, so a
lock left by a killed run never blocks the next one.
"""

from __future__ import annotations

import json
import os
import time

from ..errors import LibraryLockedError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, writers are not serialised
    fcntl = None  # type: ignore[assignment]


class WriterLock:
    """Exclusive, non-blocking; holds the holder's pid and start time for the message to others."""

    def __init__(self, path: str, library: str) -> None:
        self.path = path
        self.library = library
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_holder(fd)
                os.close(fd)
                raise LibraryLockedError(
                    f"library {self.library} is being written by another bindsearch process{holder}; "
                    "wait for it to finish"
                ) from None
        try:  # who holds it, for the message another writer gets; the flock alone is the lock
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "started": time.time()}).encode())
        except OSError:  # (a full disk): the lock holds all the same
            pass
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"]))
        return f" (pid {info['pid']}, started {started})"
    except (ValueError, KeyError, OSError, TypeError):
        return ""
