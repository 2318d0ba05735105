"""Reading files into model input in worker processes while the main process embeds.

Decoding and transforming media is CPU work that Python threads cannot share,
so it runs in worker processes (spawned: forking a process whose torch already
runs threads can deadlock). Each worker rebuilds the space from its spec (cheap:
no weights) and turns tasks into ``Prepared`` results. At most ``window`` tasks
are in flight, so a folder of any size never sits in memory as tensors.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from bindsearch.errors import MediaError, NothingToEmbed, first_line
from bindsearch.modality import Modality
from bindsearch.spaces import Space
from bindsearch.spaces.registry import space_from_spec

from .hashing import content_hash


@dataclass(frozen=True)
class Task:
    """One file to read. ``old_hash`` is the stored content hash of its item, if it has an embedded one."""

    index: int
    path: str
    modality: Modality
    old_hash: str | None


@dataclass
class Prepared:
    """What reading a file gave: model input, or why there is none."""

    index: int
    content_hash: str | None = None
    prepared: Any = None
    reason: str | None = None  # the file cannot be indexed
    nothing: str | None = None  # readable, but nothing of this modality in it
    vanished: bool = False  # deleted between the scan and the read
    known: bool = False  # content already embedded in the library: nothing was decoded
    # The file's size and mtime while it was read: what the item records, so that
    # the next run compares against the content that was actually embedded.
    size: int = 0
    mtime_ns: int = 0


def prepare_task(task: Task, space: Space, known: set[tuple[str, Modality]], retries: int = 1) -> Prepared:
    """Hash the file, then decode it into model input unless its content is already known.

    A file rewritten while it is read (its size or mtime moved) is read again
    once, then reported, so that a vector never goes with another content's hash.
    """
    try:
        before = os.stat(task.path)
    except OSError:
        return Prepared(task.index, vanished=True) if not os.path.lexists(task.path) else _read(task, space, known)
    result = _read(task, space, known)
    try:
        after = os.stat(task.path)
    except OSError:
        return Prepared(task.index, vanished=True)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        if retries > 0:
            return prepare_task(task, space, known, retries - 1)
        return Prepared(task.index, reason="the file kept changing while it was being read")
    result.size, result.mtime_ns = after.st_size, after.st_mtime_ns
    return result


def _read(task: Task, space: Space, known: set[tuple[str, Modality]]) -> Prepared:
    try:
        digest = content_hash(task.path)
    except MediaError as exc:
        if not os.path.lexists(task.path):
            return Prepared(task.index, vanished=True)
        return Prepared(task.index, reason=exc.reason)
    if digest == task.old_hash or (digest, task.modality) in known:
        return Prepared(task.index, digest, known=True)
    try:
        prepared = space.encoder(task.modality).prepare(Path(task.path))
    except NothingToEmbed as exc:
        return Prepared(task.index, digest, nothing=exc.reason)
    except MediaError as exc:
        if not os.path.lexists(task.path):
            return Prepared(task.index, vanished=True)
        return Prepared(task.index, digest, reason=exc.reason)
    except Exception as exc:  # a decoder's own exception: one line, and the run goes on
        return Prepared(task.index, digest, reason=describe(exc))
    return Prepared(task.index, digest, prepared=prepared)


def describe(exc: BaseException) -> str:
    """An unexpected exception as one line for the user (the exception's type only with BINDSEARCH_DEBUG)."""
    text = first_line(exc) if str(exc).strip() else "no details"
    if os.environ.get("BINDSEARCH_DEBUG"):
        return f"{type(exc).__name__}: {text}"
    return f"cannot read the file ({text})"


def default_workers() -> int:
    """One worker per core but one (the model uses it), at least one, at most eight."""
    return min(8, max(1, (os.cpu_count() or 2) - 1))


class Preparer:
    """Runs ``prepare_task`` over tasks: inline when ``workers`` is 0, else in worker processes."""

    def __init__(self, space: Space, known: set[tuple[str, Modality]], workers: int, window: int) -> None:
        self.space = space
        self.known = known
        self.workers = workers
        self.window = max(window, workers, 1)

    def run(self, tasks: Iterable[Task]) -> Iterator[Prepared]:
        """Results in the order they complete."""
        if self.workers == 0:
            for task in tasks:
                yield prepare_task(task, self.space, self.known)
            return
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_init_worker,
            initargs=(self.space.spec, self.known, os.getpid()),
        )
        try:
            queue = iter(tasks)
            running: set[Future[Prepared]] = {pool.submit(_run_task, t) for t in islice(queue, self.window)}
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    task = next(queue, None)
                    if task is not None:
                        running.add(pool.submit(_run_task, task))
                    yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


_space: Space | None = None
_known: set[tuple[str, Modality]] = set()


def _init_worker(spec: dict[str, Any], known: set[tuple[str, Modality]], parent: int) -> None:
    global _space, _known
    # Ctrl-C is the main process's to handle: it commits what is done and stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    import torch

    torch.set_num_threads(1)  # the cores are the model's; a worker decodes one file at a time
    # Decoding yields to the model: a model thread pre-empted by a worker holds up the
    # other threads of its parallel operation, so contention costs more than the decode itself.
    try:
        os.nice(10)
    except (AttributeError, OSError):
        pass
    _space = space_from_spec(spec)
    _known = known


def _die_with_parent(parent: int) -> None:
    """End this worker when the indexing process ends, even by SIGKILL (which it cannot pass on)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)

    def watch() -> None:  # elsewhere (and as a second line here): notice being orphaned
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _run_task(task: Task) -> Prepared:
    assert _space is not None
    return prepare_task(task, _space, _known)
