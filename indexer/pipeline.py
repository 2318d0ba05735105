"""Reading files into model input in worker processes, and on a CPU embedding them there too.

Decoding and transforming media is CPU work that Python threads cannot share,
so it runs in worker processes (spawned: forking a process whose torch already
runs threads can deadlock). Each worker rebuilds the space from its spec (cheap:
no weights) and turns tasks into ``Prepared`` results. Two ways to share the work:

- On a GPU the model lives in the main process, which embeds while the workers
  read the next files (``embed=False``).
- On a CPU the cores are the model's too, and several model processes with a
  few threads each embed more than one process with all the threads (a parallel
  operation is as slow as its slowest thread, and one pre-empted by a decoder
  holds up the rest). So each worker reads a batch of files and embeds it itself
  with its own copy of the model (``embed=True``); only vectors come back. A
  checkpoint is memory-mapped, so the copies share its pages.

Only a bounded number of tasks or batches is in flight, so a folder of any size
never sits in memory as tensors. A worker that dies (a decoder's crash, the
out-of-memory killer) takes only its culprit file down: see ``isolation``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bindsearch.errors import MediaError, NothingToEmbed, SpaceError, UnusableEmbedding, first_line
from bindsearch.modality import Modality
from bindsearch.spaces import Space
from bindsearch.spaces.registry import space_from_spec

from .hashing import content_hash
from .isolation import IsolatedReader, load_read_hook
from .read_marker import ReadMarker
from .worker_group import workers_in_own_group
from .worker_logs import WorkerLogs, forward_to


@dataclass(frozen=True)
class Task:
    """One file to read. ``old_hash`` is the stored content hash of its item, if it has an embedded one.

    A task with ``clips`` reads only those clips ((start, end) seconds) of a
    long file, for its time windows: piece ``chunk`` of the file, which must
    still have the size and mtime ``expect`` it had when it was read whole.
    """

    index: int
    path: str
    modality: Modality
    old_hash: str | None
    clips: tuple[tuple[float, float], ...] | None = None
    chunk: int = -1
    expect: tuple[int, int] | None = None


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
    duration: float | None = None  # seconds, for media that may be cut into time windows
    chunk: int = -1  # which piece of a long file's clips this is (-1: the file as a whole)
    # The file's size and mtime while it was read: what the item records, so that
    # the next run compares against the content that was actually embedded.
    size: int = 0
    mtime_ns: int = 0
    # What the model made of ``prepared`` when a worker embedded it (``prepared`` is then None):
    # the file's vector (dim,), or for a piece of a long file its clips' vectors (clips, dim).
    embedded: Any = None


def prepare_task(task: Task, space: Space, known: set[tuple[str, Modality]], retries: int = 1,
                 durations: frozenset[Modality] = frozenset()) -> Prepared:
    """Hash the file, then decode it into model input unless its content is already known.

    A file rewritten while it is read (its size or mtime moved) is read again
    once, then reported, so that a vector never goes with another content's hash.
    For modalities in ``durations`` the file's duration is read too.
    """
    if task.clips is not None:
        return _read_clips(task, space)
    try:
        before = os.stat(task.path)
    except OSError:
        if not os.path.lexists(task.path):
            return Prepared(task.index, vanished=True)
        return _read(task, space, known, durations)
    result = _read(task, space, known, durations)
    try:
        after = os.stat(task.path)
    except OSError:
        return Prepared(task.index, vanished=True)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        if retries > 0:
            return prepare_task(task, space, known, retries - 1, durations)
        return Prepared(task.index, reason="the file kept changing while it was being read")
    result.size, result.mtime_ns = after.st_size, after.st_mtime_ns
    return result


def _read_clips(task: Task, space: Space) -> Prepared:
    """Read a piece of a long file's clips, refusing a file that changed since it was read whole."""
    assert task.clips is not None
    changed = Prepared(task.index, chunk=task.chunk, reason="the file changed while its time windows were read")
    try:
        before = os.stat(task.path)
        if (before.st_size, before.st_mtime_ns) != task.expect:
            return changed
        prepared = space.encoder(task.modality).prepare_clips(Path(task.path), task.clips)
        after = os.stat(task.path)
    except MediaError as exc:
        return Prepared(task.index, chunk=task.chunk, reason=exc.reason)
    except OSError:
        if not os.path.lexists(task.path):
            return Prepared(task.index, chunk=task.chunk, vanished=True)
        return changed
    except Exception as exc:
        return Prepared(task.index, chunk=task.chunk, reason=describe(exc))
    if (after.st_size, after.st_mtime_ns) != task.expect:
        return changed
    return Prepared(task.index, prepared=prepared, chunk=task.chunk)


def _read(task: Task, space: Space, known: set[tuple[str, Modality]], durations: frozenset[Modality]) -> Prepared:
    try:
        digest = content_hash(task.path)
    except MediaError as exc:
        if not os.path.lexists(task.path):
            return Prepared(task.index, vanished=True)
        return Prepared(task.index, reason=exc.reason)
    if digest == task.old_hash or (digest, task.modality) in known:
        return Prepared(task.index, digest, known=True)
    duration = None
    try:
        encoder = space.encoder(task.modality)
        prepared = encoder.prepare(Path(task.path))
        if task.modality in durations and encoder.embeds_clips:
            duration = encoder.duration(Path(task.path))
    except NothingToEmbed as exc:
        return Prepared(task.index, digest, nothing=exc.reason)
    except MediaError as exc:
        if not os.path.lexists(task.path):
            return Prepared(task.index, vanished=True)
        return Prepared(task.index, digest, reason=exc.reason)
    except Exception as exc:  # a decoder's own exception: one line, and the run goes on
        return Prepared(task.index, digest, reason=describe(exc))
    return Prepared(task.index, digest, prepared=prepared, duration=duration)


def embed_results(space: Space, tasks: Sequence[Task], results: Sequence[Prepared]) -> None:
    """Embed the model input of a batch's results in place: whole files (of one modality) as one batch,
    pieces of long files clip by clip. An input the model fails on fails alone, with its reason."""
    whole = [r for t, r in zip(tasks, results) if r.prepared is not None and t.clips is None]
    if whole:
        encoder = space.encoder(tasks[0].modality)
        for result, vector in zip(whole, embed_or_each(encoder.embed_batch, [r.prepared for r in whole])):
            _take(result, vector)
    for task, result in zip(tasks, results):
        if result.prepared is not None and task.clips is not None:
            try:
                _take(result, space.encoder(task.modality).embed_clips(result.prepared))
            except SpaceError:
                raise
            except Exception as exc:
                _take(result, exc)


def embed_or_each(embed: Callable[[list[Any]], Any], inputs: list[Any]) -> list[Any]:
    """``embed(inputs)`` as a list; when the batch fails, each input alone (its exception in its place).

    One bad input can sink a batch; a SpaceError (the model cannot be had) sinks the run. A batch
    whose output has unusable rows (see Encoder) keeps its good rows: only the bad ones fail.
    """
    try:
        return list(embed(inputs))
    except SpaceError:
        raise
    except UnusableEmbedding as exc:
        if exc.vectors is not None and len(exc.vectors) == len(inputs):  # type: ignore[arg-type]
            return [UnusableEmbedding(exc.reason) if i in exc.bad else vector
                    for i, vector in enumerate(exc.vectors)]  # type: ignore[arg-type]
        return _each(embed, inputs)
    except Exception:
        return _each(embed, inputs)


def _each(embed: Callable[[list[Any]], Any], inputs: list[Any]) -> list[Any]:
    """``embed`` on each input alone, its exception in its place."""
    out: list[Any] = []
    for item in inputs:
        try:
            out.append(embed([item])[0])
        except SpaceError:
            raise
        except Exception as exc:
            out.append(exc)
    return out


def _take(result: Prepared, output: Any) -> None:
    result.prepared = None
    if isinstance(output, Exception):
        result.reason = describe(output)
    else:
        result.embedded = output


def describe(exc: BaseException) -> str:
    """An exception as one line for the user: a MediaError's reason, else the message of an unexpected one
    (its type only with BINDSEARCH_DEBUG)."""
    if isinstance(exc, MediaError):
        return exc.reason
    text = first_line(exc) if str(exc).strip() else "no details"
    if isinstance(exc, MemoryError) and not os.environ.get("BINDSEARCH_DEBUG"):
        return "ran out of memory while decoding" + (f" ({text})" if str(exc).strip() else "")
    if os.environ.get("BINDSEARCH_DEBUG"):
        return f"{type(exc).__name__}: {text}"
    return f"cannot read the file ({text})"


def default_workers() -> int:
    """Workers that only read, for a model in the main process: one per core but one, at least one, at most eight."""
    return min(8, max(1, (os.cpu_count() or 2) - 1))


def default_embedding_workers(cores: int | None = None) -> tuple[int, int]:
    """(workers, threads each) for workers that embed on a CPU: every core busy, at most eight processes.

    One thread each up to four cores (measured on two: two one-thread processes embed about 20 %
    more than one two-thread process), then two or more, which bounds the copies of activations.
    """
    cores = cores or os.cpu_count() or 1
    threads = 1 if cores <= 4 else max(2, -(-cores // 8))
    return max(1, min(8, cores // threads)), threads


class Batcher:
    """Tasks of one modality grouped into batches for workers that embed; a piece of a long file goes alone."""

    def __init__(self, queue: TaskQueue, batch_size: Callable[[Modality], int]) -> None:
        self.queue = queue
        self.batch_size = batch_size
        self._waiting: dict[Modality, list[Task]] = {}

    def next(self) -> list[Task] | None:
        """The next batch: a full one when the tasks allow, else (nothing left to read) the largest partial one."""
        while (task := self.queue.pop()) is not None:
            if task.clips is not None:
                return [task]
            waiting = self._waiting.setdefault(task.modality, [])
            waiting.append(task)
            if len(waiting) >= self.batch_size(task.modality):
                return self._waiting.pop(task.modality)
        if not any(self._waiting.values()):
            return None
        fullest = max(self._waiting, key=lambda m: len(self._waiting[m]))
        return self._waiting.pop(fullest)


class TaskQueue:
    """The tasks still to read. Pieces of a long file pushed to the front are read next, so that
    a file's time windows complete soon and only a few long files are in progress at once."""

    def __init__(self, tasks: Iterable[Task] = ()) -> None:
        self._tasks: deque[Task] = deque(tasks)

    def push_front(self, tasks: Iterable[Task]) -> None:
        self._tasks.extendleft(reversed(list(tasks)))

    def pop(self) -> Task | None:
        return self._tasks.popleft() if self._tasks else None


class Preparer:
    """Runs ``prepare_task`` over a TaskQueue: inline when ``workers`` is 0, else in worker processes
    (and in this process whenever it would otherwise wait for them). With ``embed``, each worker
    also embeds batches of ``batch_size`` files with ``threads`` threads, and results carry vectors."""

    def __init__(self, space: Space, known: set[tuple[str, Modality]], workers: int, window: int,
                 durations: frozenset[Modality] = frozenset(), *, embed: bool = False, threads: int = 1,
                 batch_size: Callable[[Modality], int] = lambda _: 32, marker: ReadMarker | None = None,
                 suspects: frozenset[str] = frozenset()) -> None:
        self.space = space
        self.known = known
        self.workers = workers
        self.window = max(window, workers, 1)
        self.durations = durations
        self.embeds = embed and workers > 0
        self.threads = threads
        self.batch_size = batch_size
        self.marker = marker  # names each file read in this process, in case its decoder kills it
        self.suspects = suspects  # files that killed an earlier run's process: never read in this one
        self._read_hook = load_read_hook()

    def run(self, queue: TaskQueue) -> Iterator[Prepared]:
        """Results in the order they complete. Tasks pushed while results are handled are read too."""
        if self.workers == 0:
            while (task := queue.pop()) is not None:
                yield self._read_here(task)
            return
        if self.embeds:
            yield from self._run_embedding(queue)
            return
        logs = WorkerLogs(_SPAWN)
        pool = self._pool(embeds=False, logs=logs)
        running: dict[Future[Prepared], Task] = {}

        def top_up() -> None:
            while len(running) < self.window and (task := queue.pop()) is not None:
                running[self._submit(pool, _run_task, task)] = task

        try:
            top_up()
            while running:
                done, _ = wait(running, timeout=0)
                if not done:
                    # Nothing ready (the workers are still starting, or slower than the model):
                    # rather than wait idle, this process reads the next file itself.
                    task = queue.pop()
                    if task is not None:
                        yield self._read_here(task)
                        continue
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                if any(_broken(future) for future in done):
                    results, suspects = _settle(pool, running)
                    yield from results
                    yield from self._isolated(suspects, embeds=False, logs=logs)
                    pool = self._pool(embeds=False, logs=logs)  # the run goes on with fresh workers
                    top_up()
                    continue
                for future in done:
                    del running[future]
                    top_up()
                    yield future.result()
                top_up()  # tasks pushed while the last result was handled
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            logs.close()

    def _run_embedding(self, queue: TaskQueue) -> Iterator[Prepared]:
        logs = WorkerLogs(_SPAWN)
        pool = self._pool(embeds=True, logs=logs)
        batches = Batcher(queue, self.batch_size)
        running: dict[Future[list[Prepared]], list[Task]] = {}

        def top_up() -> None:
            # One batch waiting per worker beside the one it embeds: never idle, little memory.
            while len(running) < 2 * self.workers and (batch := batches.next()) is not None:
                running[self._submit(pool, _run_batch, batch)] = batch

        try:
            top_up()
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                if any(_broken(future) for future in done):
                    results, suspects = _settle(pool, running)
                    for batch_results in results:
                        yield from batch_results
                    yield from self._isolated([t for batch in suspects for t in batch], embeds=True, logs=logs)
                    pool = self._pool(embeds=True, logs=logs)  # the run goes on with fresh workers
                    top_up()
                    continue
                for future in done:
                    del running[future]
                    top_up()
                    yield from future.result()
                top_up()  # tasks pushed while the last results were handled
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            logs.close()

    def _read_here(self, task: Task) -> Prepared:
        """Read a task in this process, named in the marker while it is read (a suspect: in a process of its own)."""
        if task.path in self.suspects:
            logs = WorkerLogs(_SPAWN)
            reader = IsolatedReader(self._initargs(False, max(1, self.threads), logs), embeds=False)
            try:
                return reader.read(task)
            finally:
                reader.close()
                logs.close()
        if self.marker is None:
            return prepare_hooked(task, self.space, self.known, self.durations, self._read_hook)
        with self.marker.reading(task.path, task.modality):
            return prepare_hooked(task, self.space, self.known, self.durations, self._read_hook)

    def _isolated(self, tasks: list[Task], embeds: bool, logs: WorkerLogs) -> Iterator[Prepared]:
        """Tasks that were in flight in a worker that died, each read again alone: only the culprit fails."""
        reader = IsolatedReader(self._initargs(embeds, max(1, self.workers * self.threads), logs), embeds)
        try:
            for task in tasks:
                yield reader.read(task)
        finally:
            reader.close()

    def _pool(self, embeds: bool, logs: WorkerLogs) -> ProcessPoolExecutor:
        with workers_in_own_group():  # (its resource tracker starts here)
            return ProcessPoolExecutor(self.workers, mp_context=_SPAWN, initializer=_init_worker,
                                       initargs=self._initargs(embeds, self.threads, logs))

    def _initargs(self, embeds: bool, threads: int, logs: WorkerLogs) -> tuple[Any, ...]:
        return (self.space.spec, self.known, self.durations, os.getpid(), embeds, threads, logs.queue, logs.level)

    def _submit(self, pool: ProcessPoolExecutor, fn: Callable[[Any], Any], arg: Any) -> Future[Any]:
        """``pool.submit``; while the pool may still start workers (it does so on submit), in their own group."""
        if len(getattr(pool, "_processes", None) or ()) >= self.workers:
            return pool.submit(fn, arg)
        with workers_in_own_group():
            return pool.submit(fn, arg)


def _broken(future: Future[Any]) -> bool:
    return isinstance(future.exception(), BrokenProcessPool)


def _settle(pool: ProcessPoolExecutor, running: dict[Future[Any], Any]) -> tuple[list[Any], list[Any]]:
    """After a worker died: (the results that came back, the tasks of every future lost with it).

    A dead worker breaks the whole pool, so every future still in flight ends, most with BrokenProcessPool.
    """
    wait(running)
    pool.shutdown(wait=True)
    results = [future.result() for future in running if not _broken(future)]
    suspects = [task for future, task in running.items() if _broken(future)]
    running.clear()
    return results, suspects


_SPAWN = multiprocessing.get_context("spawn")


_space: Space | None = None
_known: set[tuple[str, Modality]] = set()
_durations: frozenset[Modality] = frozenset()
_read_hook: Callable[[str], None] | None = None


def _init_worker(spec: dict[str, Any], known: set[tuple[str, Modality]], durations: frozenset[Modality],
                 parent: int, embeds: bool = False, threads: int = 1, log_queue: Any = None,
                 log_level: int = 0) -> None:
    global _space, _known, _durations, _read_hook
    if log_queue is not None:  # first: warnings of the imports below go there too
        forward_to(log_queue, log_level)
    # Ctrl-C is the main process's to handle: it commits what is done and stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    import torch

    if embeds:
        torch.set_num_threads(max(1, threads))  # this worker's share of the cores
    else:
        torch.set_num_threads(1)  # the cores are the model's; a worker decodes one file at a time
        # Decoding yields to the model: a model thread pre-empted by a worker holds up the
        # other threads of its parallel operation, so contention costs more than the decode itself.
        try:
            os.nice(10)
        except (AttributeError, OSError):
            pass
    _space = space_from_spec(spec)
    _known = known
    _durations = durations
    _read_hook = load_read_hook()


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
    return _prepare_in_worker(task)


def _run_batch(tasks: list[Task]) -> list[Prepared]:
    assert _space is not None
    results = [_prepare_in_worker(task) for task in tasks]
    embed_results(_space, tasks, results)
    return results


def _prepare_in_worker(task: Task) -> Prepared:
    assert _space is not None
    return prepare_hooked(task, _space, _known, _durations, _read_hook)


def prepare_hooked(task: Task, space: Space, known: set[tuple[str, Modality]], durations: frozenset[Modality],
                    hook: Callable[[str], None] | None) -> Prepared:
    if hook is not None:  # (the test seam; an exception of its own fails the file as a loader's would)
        try:
            hook(task.path)
        except Exception as exc:
            return Prepared(task.index, chunk=task.chunk, reason=describe(exc))
    return prepare_task(task, space, known, durations=durations)
