"""Finding the one file that killed a worker process, so that it costs that file and not the run.

A decoder can take its whole process down: a segmentation fault in a C library, or the kernel's
out-of-memory killer (SIGKILL). The pool's other results are then lost with it, and which of the
files in flight did it is not known. So those files are read again one at a time, each in a worker
of its own (``IsolatedReader``): a worker that dies now names its file, which is recorded as failed
with the reason its death gives, and every other file is read and embedded as usual.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
from collections.abc import Callable
from typing import Any

from bindsearch.errors import BindsearchError

from .worker_group import workers_in_own_group

# A test seam: "module:function", called in every worker process with each file's path before the
# file is read, and in the main process too. Tests use it to crash or kill a reader on one file.
READ_HOOK_VAR = "BINDSEARCH_READ_HOOK"


def load_read_hook() -> Callable[[str], None] | None:
    """The function named by BINDSEARCH_READ_HOOK, or None (the normal case: nothing is imported)."""
    spec = os.environ.get(READ_HOOK_VAR)
    if not spec:
        return None
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def death_reason(exitcode: int | None) -> str:
    """Why a file is recorded as failed when the process reading it died (its exit code as multiprocessing gives it)."""
    if exitcode == -signal.SIGKILL:
        return "ran out of memory while decoding (the process reading it was killed by SIGKILL)"
    if exitcode == -signal.SIGSEGV:
        return "the decoder crashed the process reading it (segmentation fault)"
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the process reading it died of {name}"
    return f"the process reading it ended abruptly (exit status {exitcode})"


class IsolatedReader:
    """One worker process that reads (and with ``embeds``, embeds) one task at a time.

    ``initargs`` are the pool workers' (``pipeline._init_worker``'s). A worker that dies is replaced
    by a fresh one for the next task.
    """

    def __init__(self, initargs: tuple[Any, ...], embeds: bool) -> None:
        self.initargs = initargs
        self.embeds = embeds
        self._process: Any = None
        self._conn: Any = None

    def read(self, task: Any) -> Any:
        """The task's Prepared result; one that records the worker's death if the task killed it."""
        from .pipeline import Prepared

        self._start()
        try:
            self._conn.send(task)
            outcome, value = self._conn.recv()
        except (EOFError, OSError):
            return Prepared(task.index, chunk=task.chunk, reason=death_reason(self._reap()))
        if outcome == "raised":
            raise value
        return value

    def close(self) -> None:
        if self._process is not None:
            self._conn.close()  # the worker's recv() ends, and with it the worker
            self._process.join(5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._process = self._conn = None

    def _start(self) -> None:
        if self._process is not None:
            return
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(target=_serve, args=(theirs, self.initargs, self.embeds), daemon=True,
                                  name="bindsearch-isolated-reader")
        with workers_in_own_group():
            process.start()
        theirs.close()  # only the worker holds its end now: its death is an EOF here
        self._process, self._conn = process, ours
        try:
            ours.recv()  # ready: the space is built
        except (EOFError, OSError):
            raise BindsearchError(f"a worker process could not start: {death_reason(self._reap())}") from None

    def _reap(self) -> int | None:
        self._conn.close()
        self._process.join()
        code = self._process.exitcode
        self._process = self._conn = None
        return code


def _serve(conn: Any, initargs: tuple[Any, ...], embeds: bool) -> None:
    """The isolated worker: build the space, then answer tasks until the main process closes the pipe."""
    from . import pipeline

    pipeline._init_worker(*initargs)
    conn.send(None)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        try:
            result = pipeline._run_batch([task])[0] if embeds else pipeline._run_task(task)
        except Exception as exc:  # a SpaceError, say: the main process raises it as the pool would
            conn.send(("raised", exc))
        else:
            conn.send(("ok", result))
