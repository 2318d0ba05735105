"""Read hooks (BINDSEARCH_READ_HOOK=read_hooks:misbehave), run before every file is read, in worker
processes and the main process alike: each misbehaves on one kind of file.

They stand for decoders that take their process down, which no real file can be relied on to do.
"""

from __future__ import annotations

import os
import signal


def misbehave(path: str) -> None:
    name = os.path.basename(path)
    if name.startswith("kill-"):  # what the kernel's out-of-memory killer does
        os.kill(os.getpid(), signal.SIGKILL)
    elif name.startswith("segv-"):  # a C library's crash
        os.kill(os.getpid(), signal.SIGSEGV)
    elif name.startswith("oom-"):  # an allocation that failed inside a decoder
        raise MemoryError()


def slow(path: str) -> None:
    """A reader slow enough (50 ms a file) for two index runs started together to overlap."""
    import time

    time.sleep(0.05)
