"""Keeping a library up to date while files appear, change, move and disappear.

A rescan of every watched path first, then file-system events (watchdog:
inotify, FSEvents, ...) gathered until none came for ``debounce`` seconds,
and an ordinary incremental index run over the folders they touched. So a
watch is as crash safe as ``index`` (each run commits in batches and is
finished by the next), goes on past bad files as it does, and holds the
writer lock only while a run is under way: between runs queries, ``tag``,
``remove`` and other index runs work as usual.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bindsearch.errors import BindsearchError, LibraryLockedError, UsageError

from .report import IndexReport
from .run import check_arguments

if TYPE_CHECKING:
    from bindsearch.library import LibraryStore as Library

# Events keep coming (a large copy): a run starts anyway after this many debounce periods.
_MAX_WAIT_PERIODS = 10
# How often a waiting watch looks at its stop event.
_POLL_S = 0.2


@dataclass(frozen=True)
class WatchRun:
    """One index run of a watch: the paths it indexed (the rescan at start: the watched ones) and its report."""

    paths: list[str]
    report: IndexReport
    rescan: bool = False


def watch_paths(library: Library, paths: Sequence[str | os.PathLike[str]], *, debounce: float = 2.0,
                stop: threading.Event | None = None, on_run: Callable[[WatchRun], None] | None = None,
                on_error: Callable[[str], None] | None = None, **index_options: Any) -> None:
    """Index ``paths`` into the library, then keep it up to date until ``stop`` is set.

    ``on_run`` receives each run's WatchRun, ``on_error`` a one-line message
    for a run that could not be made (the library locked by another writer:
    the run is tried again later). ``index_options`` go to every run (see
    ``index_paths``). Each run opens the library afresh, so that what other
    processes wrote between runs is seen. A KeyboardInterrupt stops the
    watch (a run under way commits what it did first) and is raised again.
    """
    if debounce < 0:
        raise UsageError(f"the debounce delay cannot be negative (got {debounce})")
    roots, _ = check_arguments(paths, index_options.get("modality"))
    stop = stop or threading.Event()
    on_run = on_run or (lambda run: None)
    on_error = on_error or (lambda message: None)
    pending = _Pending()
    observer = _start_observer(roots, pending)
    try:
        _run_until_done(library, roots, roots, True, stop, on_run, on_error, debounce, index_options)
        while not stop.is_set():
            batch = pending.take(debounce, stop)
            if not batch:
                continue
            runs_on = index_roots(batch, roots, str(library.path))
            if runs_on:
                _run_until_done(library, runs_on, roots, False, stop, on_run, on_error, debounce, index_options,
                                pending)
    finally:
        observer.stop()
        observer.join(timeout=5)


def index_roots(changed: Iterable[str], watched: Sequence[str], library: str,
                exists: Callable[[str], bool] = os.path.lexists) -> list[str]:
    """The paths an index run must cover for these changed paths: each one that exists, else the
    nearest folder above it that does (a deleted or moved-away file is swept from there), none under
    another. Paths outside the watched ones, in the library's folder, or hidden below a watched path
    (a name starting with '.', as editors' temporary files) are left out."""
    chosen: set[str] = set()
    library = library.rstrip(os.sep)
    for path in changed:
        path = os.path.abspath(path)
        if path == library or path.startswith(library + os.sep):
            continue
        root = next((r for r in watched if path == r or path.startswith(r.rstrip(os.sep) + os.sep)), None)
        if root is None:
            continue
        inside = os.path.relpath(path, root)
        if inside != "." and any(part.startswith(".") for part in inside.split(os.sep)):
            continue
        while path != root and not exists(path):
            path = os.path.dirname(path)
        if exists(path):
            chosen.add(path)
    ordered = sorted(chosen)
    return [p for p in ordered if not any(p != q and p.startswith(q.rstrip(os.sep) + os.sep) for q in ordered)]


def _run_until_done(library: Library, runs_on: list[str], watched: list[str], rescan: bool,
                    stop: threading.Event, on_run: Callable[[WatchRun], None], on_error: Callable[[str], None],
                    debounce: float, index_options: dict[str, Any], pending: _Pending | None = None) -> None:
    """One index run over ``runs_on``, tried again while another writer holds the library."""
    from .run import index_paths

    while not stop.is_set():
        # A path may vanish between the event and the run: choose again from what is there now.
        current = runs_on if rescan else index_roots(runs_on, watched, str(library.path))
        if not current:
            return
        try:
            with type(library).open(library.location, library.space) as fresh:
                report = index_paths(fresh, current, **index_options)
        except LibraryLockedError as exc:
            on_error(f"{exc}; trying again")
            if stop.wait(max(debounce, 1.0)):
                return
            continue
        except BindsearchError as exc:
            on_error(str(exc))
            return
        on_run(WatchRun(current, report, rescan))
        if report.interrupted:
            raise KeyboardInterrupt
        return


class _Pending:
    """Changed paths gathered from the observer's thread, and when the last one came."""

    def __init__(self) -> None:
        self._paths: set[str] = set()
        self._first = 0.0
        self._last = 0.0
        self._lock = threading.Lock()

    def add(self, paths: Iterable[str]) -> None:
        now = time.monotonic()
        with self._lock:
            if not self._paths:
                self._first = now
            self._paths.update(paths)
            self._last = now

    def take(self, debounce: float, stop: threading.Event) -> set[str]:
        """The paths gathered once none came for ``debounce`` s (or events kept coming too long); may be empty."""
        while not stop.is_set():
            with self._lock:
                now = time.monotonic()
                quiet = now - self._last >= debounce
                too_long = now - self._first >= _MAX_WAIT_PERIODS * max(debounce, _POLL_S)
                if self._paths and (quiet or too_long):
                    taken, self._paths = self._paths, set()
                    return taken
            stop.wait(_POLL_S)
        return set()


def _start_observer(roots: list[str], pending: _Pending) -> Any:
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    class Collector(FileSystemEventHandler):
        def on_any_event(self, event: Any) -> None:
            if event.event_type in ("opened", "closed_no_write"):
                return  # reading a file changes nothing
            changed = [os.fsdecode(event.src_path)]
            if getattr(event, "dest_path", ""):
                changed.append(os.fsdecode(event.dest_path))
            pending.add(changed)

    observer = Observer()
    handler = Collector()
    for root in roots:
        # A watched file is watched through its folder; its events are filtered by index_roots.
        folder = root if os.path.isdir(root) else os.path.dirname(root)
        try:
            observer.schedule(handler, folder, recursive=os.path.isdir(root))
        except OSError as exc:
            raise UsageError(f"cannot watch {root}: {exc.strerror or exc}") from None
    observer.start()
    return observer
