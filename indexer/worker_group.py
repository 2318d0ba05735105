"""Worker processes in a process group of their own, out of reach of the terminal's Ctrl-C.

The terminal sends Ctrl-C (SIGINT) to every process of its foreground group. A spawned worker still
importing torch would die of it with a traceback of its own and break the pool; the main process
alone should handle it (it commits what is done and stops the workers). So workers are started in a
group of their own (``posix_spawn`` with ``setpgroup``): the signal never reaches them, and the main
process handles it. A Ctrl-C that comes while a worker is being started waits until it is started:
interrupted halfway, the worker would be left without its instructions (and say so in a traceback).
Ignoring SIGINT in the main process while it starts them would be inherited too, but would lose it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from multiprocessing import util

_lock = threading.Lock()


def _spawn_in_own_group(path: str, args: Sequence[str], passfds: Sequence[int]) -> int:
    """What multiprocessing's spawn does to start a worker (the executable with ``args``, keeping only
    ``passfds`` of this process's descriptors beside the standard ones), in a new process group."""
    fds = sorted({int(fd) for fd in passfds})
    inheritable = [os.get_inheritable(fd) for fd in fds]
    for fd in fds:
        os.set_inheritable(fd, True)  # a descriptor is passed to the child by not closing it on exec
    try:
        return os.posix_spawn(path, list(args), os.environ, setpgroup=0)
    finally:
        for fd, was in zip(fds, inheritable):
            os.set_inheritable(fd, was)


@contextlib.contextmanager
def workers_in_own_group() -> Iterator[None]:
    """Processes spawned by multiprocessing within this block start in a process group of their own.

    Where ``posix_spawn`` is missing (not POSIX) they start as usual.
    """
    if not hasattr(os, "posix_spawn"):
        yield
        return
    with _lock, _interrupt_deferred():
        usual = util.spawnv_passfds
        util.spawnv_passfds = _spawn_in_own_group
        try:
            yield
        finally:
            util.spawnv_passfds = usual


@contextlib.contextmanager
def _interrupt_deferred() -> Iterator[None]:
    """A Ctrl-C within the block is raised when it ends. Only the main thread handles signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(signal.SIGINT, None)  # KeyboardInterrupt, with Python's own handler
            elif previous != signal.SIG_IGN:
                raise KeyboardInterrupt
