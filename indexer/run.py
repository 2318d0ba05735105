"""One indexing run: scan, diff against the library (mark and sweep), embed what changed, commit in batches."""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bindsearch.bulk_import.files_on_disk import imported_without_file
from bindsearch.errors import BindsearchError, DiskFullError, SpaceError, UsageError
from bindsearch.library import LibraryStore, LibraryWriter, StoredItem
from bindsearch.library.database import raw_cursor
from bindsearch.library.disk_space import disk_full_message, disk_is_full
from bindsearch.library.schema import STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, STATUS_STALE, UNKNOWN_DURATION
from bindsearch.modality import Modality
from bindsearch.windows import WINDOWED, WindowSettings, chunks, file_windows, pool_windows, window_times

from .claims import ClaimingQueue, Claims
from .memory import WORKER_BYTES, available_memory, workers_memory_allows
from .pipeline import (
    Prepared,
    Preparer,
    Task,
    TaskQueue,
    default_embedding_workers,
    default_workers,
    describe,
    embed_or_each,
    prepare_task,
)
from .rates import RateClock
from .ray_preparer import RayCluster, RayPreparer, ray_cluster
from .read_marker import ReadMarker, take_suspect
from .report import IndexObserver, IndexReport
from .scan import FoundFile, scan

log = logging.getLogger("bindsearch")

_KEPT_ON_FULL_DISK = "every batch committed before is kept, the one being written is not"
# Staged metadata changes (touches, moves, failures) are committed at least this often.
_MAX_STAGED = 1000
# Below this many files to read, files are read in the main process (no workers to start).
_MIN_FILES_FOR_WORKERS = 48
_VIDEO_BATCH = 4
# A long file's clips are read and embedded this many at a time (video clips are larger).
_CLIPS_PER_CHUNK = {Modality.AUDIO: 32, Modality.VIDEO: 8}
# The reason the loaders and the walk record for a file they may not read.
_PERMISSION_DENIED = "permission denied"


class _Windowed:
    """A long file in progress: its whole-file vector and its clips' vectors arrive separately."""

    def __init__(self, index: int, clips: list[tuple[float, float]], spans: list[tuple[int, int]],
                 pieces: int) -> None:
        self.index = index  # the file's task index
        self.clips = clips
        self.spans = spans
        self.clip_vectors: np.ndarray | None = None
        self.pieces_left = pieces
        self.vector: np.ndarray | None = None
        self.reason: str | None = None  # why the file fails, once something did
        self.embedded = False  # the whole-file vector is done (or failed)
        self.tags: Sequence[str] = ()  # given with the whole-file vector, stored with the windows
        self.waiting: _Pending | None = None  # the file, once embedded while pieces are still out

    @property
    def complete(self) -> bool:
        return self.embedded and self.pieces_left == 0

    def windows(self) -> list[tuple[float, float, np.ndarray]]:
        assert self.clip_vectors is not None
        vectors = pool_windows(self.clip_vectors, self.spans)
        return [(start, end, v) for (start, end), v in zip(window_times(self.clips, self.spans), vectors)]


@dataclass
class _Pending:
    file: FoundFile
    old: StoredItem | None
    content_hash: str
    prepared: Any
    windowed: _Windowed | None = None
    duration: float | None = None
    vector: np.ndarray | None = None  # embedded already, by a worker


def index_paths(
    library: LibraryStore,
    paths: Sequence[str | os.PathLike[str]],
    *,
    modality: Modality | str | None = None,
    observer: IndexObserver | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    windows: WindowSettings | None = None,
    auto_tag: Sequence[str] | None = None,
    auto_tag_min: float | None = None,
    retry_failed: bool = False,
    auto_tag_examples: str | os.PathLike[str] | None = None,
    ray: str | None = None,
) -> IndexReport:
    """Bring the library up to date with the files under ``paths``.

    Unchanged files (same size and mtime) cost a stat; changed ones are
    embedded again; a file whose content is already known (moved, renamed,
    copied) reuses its vector; items whose file is gone are removed. A file that
    cannot be read is recorded as failed with its reason, and the run goes on.
    ``modality`` forces one modality for every file found. Files are read in
    ``workers`` processes (default: one per core but one; 0 reads them in this
    process) while batches of ``batch_size`` are embedded. Long audio and video
    are also cut into time windows as the library's window settings say;
    ``windows`` changes those settings (the library's audio and video are then
    read again). ``auto_tag`` labels: every new item is tagged with the label
    its vector is closest to (zero-shot, see ``bindsearch.classify``), when that label's probability
    reaches ``auto_tag_min`` (if given; an item none fits gets no tag);
    ``auto_tag_examples``, a folder of example files per label, does the same
    with labels learned from them (few-shot, see ``bindsearch.fewshot``). A file
    that failed before and has not changed since costs a stat too: it is
    reported as failed again with the reason stored, unless ``retry_failed``
    (then it is read again). Work is
    committed in batches; a KeyboardInterrupt commits what is done and returns
    a report with ``interrupted`` set. ``ray``: read and embed on a Ray cluster
    at that address ("local": a Ray started on this machine for the run; see
    ``ray_preparer``); the files must be readable there under the same paths.
    """
    observer = observer or IndexObserver()
    roots, forced = check_arguments(paths, modality, auto_tag_min=auto_tag_min)
    space = library.space
    if forced is not None and forced not in space.modalities:
        have = ", ".join(sorted(m.value for m in space.modalities))
        if not forced.builtin:
            raise UsageError(f"unknown modality '{forced.value}' (space {space.name} embeds: {have})")
        raise UsageError(f"space {space.name} cannot embed {forced.value} (it embeds: {have})")
    if batch_size < 1:
        raise UsageError("batch size must be at least 1")
    if workers is not None and workers < 0:
        raise UsageError("the number of workers cannot be negative")
    if auto_tag and auto_tag_examples is not None:
        raise UsageError("give one of --auto-tag LABELS and --auto-tag-examples DIR, not both")
    # Examples are embedded before the library is written to: one that cannot be read stops the run first.
    tagger = _auto_tagger(space, auto_tag, auto_tag_examples) if auto_tag or auto_tag_examples is not None else None

    cluster = ray_cluster(ray)
    report = IndexReport()
    started = time.monotonic()
    try:
        with library.writer(kept=_KEPT_ON_FULL_DISK) as writer:
            library.record_roots(roots)
            if windows is not None and library.set_window_settings(windows):
                report.window_settings_changed = True
            claims = Claims(library._engine) if getattr(library.vectors, "shared", False) else None
            run = _Run(library, writer, report, observer, batch_size, workers,
                       tagger, auto_tag_min, retry_failed, cluster, claims)
            try:
                run.execute(roots, forced)
            except KeyboardInterrupt:
                report.interrupted = True
                writer.commit()
            except BindsearchError:
                writer.commit()  # keep what is done (failures, moves) before giving up
                raise
            finally:
                if claims is not None:
                    claims.close()
            observer.phase("saving")
    except Exception as exc:
        # A batch's transaction is all or nothing, and a FAISS file not written is rebuilt from SQLite.
        if not isinstance(exc, BindsearchError) and disk_is_full(exc, library.path):
            raise DiskFullError(disk_full_message(library.path, _KEPT_ON_FULL_DISK)) from None
        raise
    finally:
        if cluster is not None:
            cluster.close()  # a Ray started for the run stops with it; one reached at an address runs on
    report.seconds = time.monotonic() - started
    return report


def check_arguments(
    paths: Sequence[str | os.PathLike[str]], modality: Modality | str | None = None, *,
    auto_tag_min: float | None = None,
) -> tuple[list[str], Modality | None]:
    """The absolute roots to index and the forced modality; UsageError for a missing or empty path, an
    unknown modality, or an --auto-tag-min that is no probability.

    Cheap, so that a front end can check its arguments before it opens (or creates) a library.
    """
    if not paths:
        raise UsageError("give at least one file or folder to index")
    if auto_tag_min is not None and not 0.0 <= auto_tag_min <= 1.0:  # also refuses NaN
        raise UsageError(f"--auto-tag-min is a probability, from 0 to 1 (got {auto_tag_min})")
    roots = []
    for p in paths:
        if not os.fspath(p):
            raise UsageError("an empty path names no file or folder (write . for the current folder)")
        root = os.path.abspath(os.fspath(p))
        if not os.path.lexists(root):
            raise UsageError(f"no such file or folder: {os.fspath(p)}")
        roots.append(root)
    return roots, Modality.parse(modality) if modality is not None else None


class _Run:
    def __init__(self, library: LibraryStore, writer: LibraryWriter, report: IndexReport,
                 observer: IndexObserver, batch_size: int, workers: int | None, tagger: Any = None,
                 tag_min: float | None = None, retry_failed: bool = False, ray: RayCluster | None = None,
                 claims: Claims | None = None) -> None:
        self.library = library
        self.ray = ray
        self.preparer: Preparer | RayPreparer | None = None
        self.space = library.space
        self.writer = writer
        self.report = report
        self.observer = observer
        self.batch_size = batch_size
        self.workers = workers
        self.pending: dict[Modality, list[_Pending]] = {}
        self.model_used = False
        self.embedded_by_modality: dict[Modality, int] = {}
        self.rate_clocks: dict[Modality, RateClock] = {}  # started by each modality's first embedded batch
        self.precision_recorded: set[Modality] = set()
        self.window_settings = library.window_settings
        self.queue = TaskQueue()
        self.claims = claims
        self.work: list[tuple[FoundFile, StoredItem | None]] = []
        self.windowed: dict[int, _Windowed] = {}  # long files in progress, by task index
        self.tagger = tagger  # a LabelSet for --auto-tag, an ExampleLabels for --auto-tag-examples, or None
        self.tag_min = tag_min  # the probability the best label must reach (None: any)
        self.retry_failed = retry_failed
        self.without_duration: list[StoredItem] = []  # unchanged audio and video whose length is not known
        self.marker = ReadMarker(str(library.path))  # names the file this process is reading
        self.suspect: str | None = None  # the file the last run died reading: read in a process of its own

    def execute(self, roots: list[str], forced: Modality | None) -> None:
        self.suspect = take_suspect(self.marker, self.library, self.writer)  # a file that killed the last run
        try:
            self._execute(roots, forced)
        finally:
            self.marker.close()

    def _execute(self, roots: list[str], forced: Modality | None) -> None:
        self.observer.phase("scanning")
        # The mark phase builds a few hundred thousand small objects that are never cyclic:
        # the cyclic collector would only walk them again and again.
        collecting = gc.isenabled()
        gc.disable()
        try:
            work, gone, gone_by_hash = self._mark(roots, forced)
        finally:
            if collecting:
                gc.enable()
        self._embed(work, gone, gone_by_hash)

    def _mark(self, roots: list[str], forced: Modality | None) -> tuple[list, dict, dict]:
        """Compare what is on disk with what the library holds: the files to read, and the items gone."""
        modalities = self.space.modalities
        found = scan(roots, forced, exclude=[str(self.library.path)],
                     soundtracks=Modality.VIDEO in modalities and Modality.AUDIO in modalities,
                     naming=self.space.naming)
        stored = {(item.path, item.modality): item for item in self.library.items_under(roots)}
        for folder, reason in found.unreadable_dirs:
            self.report.fail(folder, f"folder not indexed: {reason}")

        work: list[tuple[FoundFile, StoredItem | None]] = []
        seen: set[tuple[str, Modality]] = set()
        for f in found.files:
            if f.modality not in modalities:
                self.report.skip_unsupported()
                continue
            key = (f.path, f.modality)
            seen.add(key)
            old = stored.get(key)
            same_stat = old is not None and old.size == f.size and old.mtime_ns == f.mtime_ns
            if f.error is not None:
                self._fail(f, old, f.error)
            elif same_stat and old.status == STATUS_OK and not self._needs_windows(old):
                self.report.unchanged += 1
                if old.duration is None and old.modality in WINDOWED:
                    self.without_duration.append(old)  # indexed before durations were recorded
            elif same_stat and old.status == STATUS_SKIPPED:
                self.report.skipped += 1
            elif same_stat and old.status == STATUS_FAILED and not self._read_again(old):
                # Reading it again would fail again: a damaged file stays damaged until it changes.
                self.report.fail(f.path, old.error or "failed before")
                self.report.still_failed += 1
            else:
                work.append((f, old))

        # Items whose file is gone, unless it lies in a folder we could not read. An item the walk did
        # not list but whose file is still there (indexed as another modality with --modality, or of a
        # kind this walk skips) is no one's to delete: only a file that is gone takes its item along.
        # An item imported without its file never had one here: it stays until removed.
        blocked = [d.rstrip(os.sep) + os.sep for d, _ in found.unreadable_dirs]
        gone = {
            key: item for key, item in stored.items()
            if key not in seen and not any(item.path.startswith(b) for b in blocked)
            and not os.path.lexists(item.path) and not imported_without_file(item.size, item.mtime_ns, item.status)
        }
        gone_by_hash = {(item.content_hash, item.modality): key for key, item in gone.items()
                        if item.content_hash and item.status == STATUS_OK}
        return work, gone, gone_by_hash

    def _done_elsewhere(self, tasks: Sequence[Task]) -> set[int]:
        """The indexes of ``tasks`` whose item another run has committed since this one's scan, as the file is."""
        wanted = {(os.fsencode(t.path), t.modality.value): t.index for t in tasks}
        paths = sorted({path for path, _ in wanted})
        done: set[int] = set()
        with raw_cursor(self.library._engine) as cursor:
            for begin in range(0, len(paths), 500):
                chunk = paths[begin : begin + 500]
                rows = cursor.execute("SELECT path, modality, id, size, mtime_ns, status, window_count FROM items "
                                      f"WHERE path IN ({','.join('?' * len(chunk))})", chunk).fetchall()
                for path, modality, item_id, size, mtime_ns, status, windows in rows:
                    index = wanted.get((bytes(path), modality))
                    if index is None:
                        continue
                    f, old = self.work[index]
                    before = None if old is None else (old.id, old.size, old.mtime_ns, old.status, old.window_count)
                    changed = (item_id, size, mtime_ns, status, windows) != before
                    if changed and (size, mtime_ns) == (f.size, f.mtime_ns):
                        done.add(index)
        return done

    def _left_to_others(self, task: Task) -> None:
        self.report.left_to_others += 1
        self.observer.advanced(1, task.modality.value)

    def _read_again(self, failed: StoredItem) -> bool:
        """Whether to read a file that failed and has not changed: with --retry-failed, or when it
        failed for want of permission and can be read now (chmod changes no size or mtime)."""
        if self.retry_failed:
            return True
        return failed.error == _PERMISSION_DENIED and os.access(failed.path, os.R_OK)

    def _needs_windows(self, item: StoredItem) -> bool:
        """An audio or video item not yet cut into windows under the current settings."""
        return item.window_count is None and item.modality in WINDOWED and self.window_settings.enabled

    def _embed(self, work: list, gone: dict, gone_by_hash: dict) -> None:
        """Read, embed and commit the files to read; then remove the items that are gone."""
        by_modality: dict[str, int] = {}
        for f, _ in work:
            by_modality[f.modality.value] = by_modality.get(f.modality.value, 0) + 1
        self.observer.started(len(work), by_modality)
        self.observer.phase("reading files")
        self.work = work
        if self.claims is not None:  # other runs may write the library at once: claim files as they are read
            self.queue = ClaimingQueue([], self.claims, _claim_key, self._done_elsewhere, self._left_to_others)
        self.queue.push_front(self._tasks(work))
        preparer = self._ray_preparer(work) if self.ray is not None and work else self._preparer(work)
        self.preparer = preparer
        if preparer.embeds and work:
            self.observer.phase("loading model")  # in the workers, before their first results
        try:
            for result in preparer.run(self.queue):
                if result.chunk >= 0:
                    self._handle_piece(result)
                    continue
                f, old = work[result.index]
                if result.size or result.mtime_ns:
                    f = f._replace(size=result.size, mtime_ns=result.mtime_ns)
                self._handle(f, old, result, gone, gone_by_hash)
                if self.writer.pending >= _MAX_STAGED:
                    self.writer.commit()
        finally:
            if isinstance(preparer, RayPreparer) and preparer.actors_seconds is not None:
                self.report.ray_actors_seconds = round(preparer.actors_seconds, 2)
        for modality in list(self.pending):
            self._flush(modality)
        self._read_durations()
        self.report.rates = {m.value: None if (rate := clock.rate()) is None else round(rate, 2)
                             for m, clock in sorted(self.rate_clocks.items())}
        self.report.windows = dict(sorted(self.report.windows.items()))
        for item in gone.values():
            self.writer.remove(item.id, item.modality)
            self.report.removed += 1
        self.writer.commit()

    def _tasks(self, work: list[tuple[FoundFile, StoredItem | None]]) -> list[Task]:
        def old_hash(old: StoredItem | None) -> str | None:
            # An item still to be cut into windows is read again even if its content is the same.
            if old is None or old.status != STATUS_OK or self._needs_windows(old):
                return None
            return old.content_hash

        return [Task(i, f.path, f.modality, old_hash(old)) for i, (f, old) in enumerate(work)]

    def _ray_preparer(self, work: list[tuple[FoundFile, StoredItem | None]]) -> RayPreparer:
        assert self.ray is not None
        self.observer.phase("starting Ray")
        self.ray.connect()
        self.report.ray_startup_seconds = round(self.ray.startup_seconds, 2)
        known = self.library.known_hashes({f.modality for f, _ in work})
        return RayPreparer(self.space, known, self.ray, durations=WINDOWED,
                           batch_size=lambda m: _batch_size(m, self.batch_size))

    def _preparer(self, work: list[tuple[FoundFile, StoredItem | None]]) -> Preparer:
        """Workers that read and embed on a CPU, workers that read for the model here on a GPU,
        or (a handful of files) none: starting workers costs a few seconds (each imports torch)."""
        workers, threads, embed = self.workers, 1, False
        if not work or (workers is None and len(work) < _MIN_FILES_FOR_WORKERS):
            workers = 0
        elif workers != 0 and _runs_on_cpu():  # (asking torch for a GPU imports it: only with work to do)
            embed = True
            if workers is None:
                workers, threads = default_embedding_workers()
            else:
                threads = max(1, (os.cpu_count() or 1) // workers)
        elif workers is None:
            workers = default_workers()
        if workers > 0:
            modalities = sorted({f.modality for f, _ in work}, key=lambda m: m.value)
            workers, threads = self._memory_capped(workers, threads, embed, modalities)
        known = self.library.known_hashes({f.modality for f, _ in work}) if work else set()
        return Preparer(self.space, known, workers, window=self.batch_size + 4 * max(workers, 1),
                        durations=WINDOWED, embed=embed, threads=threads,
                        batch_size=lambda m: _batch_size(m, self.batch_size), marker=self.marker,
                        suspects=frozenset([self.suspect] if self.suspect else []))

    def _memory_capped(self, workers: int, threads: int, embed: bool,
                       modalities: Sequence[Modality]) -> tuple[int, int]:
        """Fewer workers when the free memory does not hold them all (each embedding one gets more threads).
        A worker that embeds also holds the weights its precision copies (bf16 trunks: 1.3 GB for ImageBind-Huge's
        vision tower)."""
        available = available_memory()
        per_worker = WORKER_BYTES + (self.space.private_weight_bytes(modalities) if embed else 0)
        allowed = workers_memory_allows(workers, available, per_worker)
        if allowed == workers:
            return workers, threads
        if self.workers is not None:  # asked for: say why it is not done
            log.warning("%d workers lowered to %d: each needs about %.2f GB and %.1f GB of memory are free",
                        workers, allowed, per_worker / 1e9, (available or 0) / 1e9)
        if embed:
            threads = max(threads, (os.cpu_count() or 1) // allowed)
        return allowed, threads

    def _handle(self, f: FoundFile, old: StoredItem | None, result: Prepared, gone: dict, gone_by_hash: dict) -> None:
        if result.vanished:
            if old is not None:  # deleted since the scan: it goes, like any file that is gone
                self.writer.remove(old.id, old.modality)
                self.report.removed += 1
        elif result.reason is not None:
            self._fail(f, old, result.reason)
        elif result.nothing is not None:
            self.writer.put_failed(f.path, f.modality, f.size, f.mtime_ns, result.nothing, status=STATUS_SKIPPED)
            self.report.skipped += 1
        elif result.known and not self._reuse(f, old, result.content_hash, gone, gone_by_hash):
            # Known when the worker looked, gone since (its only copy moved away in this run): read it here.
            again = prepare_task(Task(0, f.path, f.modality, None), self.space, set(), durations=WINDOWED)
            self._handle(f, old, again, gone, gone_by_hash)
            return
        elif not result.known:
            if not self.model_used:
                self.observer.phase("loading model")  # the first batch loads the model: it takes a while
            batch = self.pending.setdefault(f.modality, [])
            batch.append(_Pending(f, old, result.content_hash, result.prepared, self._start_windows(result, f),
                                  result.duration, result.embedded))
            if len(batch) >= _batch_size(f.modality, self.batch_size):
                self._flush(f.modality)
            return
        self.observer.advanced(1, f.modality.value)

    def _reuse(self, f: FoundFile, old: StoredItem | None, digest: str, gone: dict, gone_by_hash: dict) -> bool:
        """Record a file whose content the library already holds; False if that content is no longer there."""
        if old is not None and old.status == STATUS_OK and old.content_hash == digest:
            self.writer.touch(old.id, f.size, f.mtime_ns)  # touched, not changed
            self.report.unchanged += 1
            return True
        moved_key = gone_by_hash.pop((digest, f.modality), None)
        if moved_key is not None:
            moved = gone.pop(moved_key)
            if old is not None:
                # Frees (path, modality) for the moved item, which takes the tags given to this path too.
                self.writer.remove(old.id, old.modality, tags_to=moved.id)
            self.writer.move(moved.id, f.path, f.size, f.mtime_ns)
            self.report.moved += 1
            return True
        self.writer.commit()  # a copy of a file embedded earlier in this run is found once committed
        known = self.library.vector_by_hash(digest, f.modality)
        if known is None:
            return False
        item_id, vector, duration = known
        windows = self.library.windows_of(item_id) if f.modality in WINDOWED else None
        self.writer.put(f.path, f.modality, f.size, f.mtime_ns, digest, vector, windows, duration=duration,
                        tags=self._auto_tags(f.modality, [vector])[0] if old is None else ())
        self._count_embedded(old)
        return True

    def _flush(self, modality: Modality) -> None:
        batch = self.pending.pop(modality, [])
        if not batch:
            return
        to_embed = [p for p in batch if p.vector is None]
        if to_embed:
            vectors = iter(embed_or_each(self.space.encoder(modality).embed_batch, [p.prepared for p in to_embed]))
        results: list[Any] = [p.vector if p.vector is not None else next(vectors) for p in batch]
        if not self.model_used:
            self.model_used = True
            self.observer.phase("embedding")
        labels = self._auto_tags(modality, [r for p, r in zip(batch, results)
                                            if p.old is None and not isinstance(r, Exception)])
        done = 0
        for p, result in zip(batch, results):
            tags = labels.pop(0) if p.old is None and not isinstance(result, Exception) else ()
            if p.windowed is not None:  # a long file: done when its windows are too
                if isinstance(result, Exception):
                    p.windowed.reason = p.windowed.reason or describe(result)
                else:
                    p.windowed.vector = result
                    p.windowed.tags = tags
                p.windowed.embedded = True
                done += self._finish_windowed(p)
            elif isinstance(result, Exception):
                self._fail(p.file, p.old, describe(result))
                done += 1
            else:
                windows = [] if modality in WINDOWED and self.window_settings.enabled else None
                self._put(p, result, windows, tags)
                done += 1
        self.writer.commit()
        self._clock(modality)
        if done:
            self.observer.advanced(done, modality.value)

    def _put(self, p: _Pending, vector: np.ndarray, windows: list[tuple[float, float, np.ndarray]] | None,
             tags: Sequence[str] = ()) -> None:
        modality = p.file.modality
        duration = p.duration if p.duration is not None or modality not in WINDOWED else UNKNOWN_DURATION
        self.writer.put(p.file.path, modality, p.file.size, p.file.mtime_ns, p.content_hash, vector, windows,
                        duration=duration, tags=tags)
        self.report.embedded += 1
        self.embedded_by_modality[modality] = self.embedded_by_modality.get(modality, 0) + 1
        if windows:
            self.report.windows[modality.value] = self.report.windows.get(modality.value, 0) + len(windows)
        self._count_embedded(p.old)

    # -- time windows of long files --------------------------------------------------------

    def _start_windows(self, result: Prepared, f: FoundFile) -> _Windowed | None:
        """For a long file: queue the pieces its clips are read in, and track it until they are embedded."""
        if f.modality not in WINDOWED or not self.window_settings.enabled:
            return None
        clips, spans = file_windows(result.duration, self.window_settings)
        if not spans:
            return None
        pieces = chunks(len(clips), _CLIPS_PER_CHUNK[f.modality])
        state = _Windowed(result.index, clips, spans, len(pieces))
        self.windowed[result.index] = state
        self.queue.push_front(
            Task(result.index, f.path, f.modality, None, clips=tuple(clips[a:b]), chunk=n,
                 expect=(result.size, result.mtime_ns))
            for n, (a, b) in enumerate(pieces)
        )
        return state

    def _handle_piece(self, result: Prepared) -> None:
        """Embed a piece of a long file's clips as soon as it is read."""
        state = self.windowed[result.index]
        f, _ = self.work[result.index]
        first = result.chunk * _CLIPS_PER_CHUNK[f.modality]
        if result.vanished:
            state.reason = state.reason or "the file was deleted while its time windows were read"
        elif result.reason is not None:
            state.reason = state.reason or result.reason
        elif state.reason is None:
            try:
                vectors = result.embedded
                if vectors is None:
                    vectors = self.space.encoder(f.modality).embed_clips(result.prepared)
            except SpaceError:
                raise
            except Exception as exc:
                state.reason = describe(exc)
            else:
                if state.clip_vectors is None:
                    state.clip_vectors = np.zeros((len(state.clips), vectors.shape[1]), dtype=np.float32)
                state.clip_vectors[first : first + len(vectors)] = vectors
        state.pieces_left -= 1
        if state.complete and state.waiting is not None:
            if self._finish_windowed(state.waiting):
                self.writer.commit()
                self._clock(f.modality)
                self.observer.advanced(1, f.modality.value)

    def _finish_windowed(self, p: _Pending) -> int:
        """Store a long file once its whole-file vector and all its clips are embedded; 1 if it was."""
        state = p.windowed
        assert state is not None
        if not state.complete:
            state.waiting = p  # its last pieces are still being read
            return 0
        del self.windowed[state.index]
        if state.reason is not None:
            self._fail(p.file, p.old, state.reason)
        else:
            assert state.vector is not None
            self._put(p, state.vector, state.windows(), state.tags)
        return 1

    # -- metadata ------------------------------------------------------------------

    def _auto_tags(self, modality: Modality, vectors: Sequence[np.ndarray]) -> list[tuple[str, ...]]:
        """With --auto-tag: the best label of each new vector, as a one-tag tuple (else empty tuples)."""
        if self.tagger is None or not vectors or modality not in self.space.modalities:
            return [() for _ in vectors]
        best = self.tagger.best(modality, np.stack(vectors), self.tag_min)
        return [(label,) if label is not None else () for label in best]

    def _read_durations(self) -> None:
        """Lengths of unchanged audio and video items indexed before lengths were recorded (headers only)."""
        for item in self.without_duration:
            try:
                with self.marker.reading(item.path, item.modality, header_only=True):
                    duration = self.space.encoder(item.modality).duration(item.path)
            except Exception:  # unreadable now: the next run that reads the file again records it
                duration = None
            # Asked once: a length the headers do not tell is recorded as unknown, not asked again.
            self.writer.set_duration(item.id, UNKNOWN_DURATION if duration is None else duration)
            if self.writer.pending >= _MAX_STAGED:
                self.writer.commit()
        self.without_duration = []

    def _clock(self, modality: Modality) -> None:
        """After a batch is stored: the modality's files embedded so far, for its rate; and, after its first,
        the precision that embedded them, in the report and the library."""
        if embedded := self.embedded_by_modality.get(modality, 0):
            self.rate_clocks.setdefault(modality, RateClock()).done(embedded, time.monotonic())
            if modality not in self.precision_recorded:
                # Ray's actors say what they embedded in (a GPU node's precision may not be this machine's).
                self.report.precision = (self.report.precision or getattr(self.preparer, "precision", None)
                                         or self.space.precision)
                self.library.record_precision([modality], self.report.precision)
                self.precision_recorded.add(modality)

    def _count_embedded(self, old: StoredItem | None) -> None:
        if old is not None and old.status in (STATUS_OK, STATUS_STALE):
            self.report.updated += 1
        else:
            self.report.added += 1

    def _fail(self, f: FoundFile, old: StoredItem | None, reason: str) -> None:
        self.writer.put_failed(f.path, f.modality, f.size, f.mtime_ns, reason)
        self.report.fail(f.path, reason)


def _claim_key(task: Task) -> tuple[bytes, str]:
    return os.fsencode(task.path), task.modality.value


def _runs_on_cpu() -> bool:
    from bindsearch.spaces.torch_runtime import pick_device

    return pick_device() == "cpu"


def _auto_tagger(space: Any, labels: Sequence[str] | None, examples: str | os.PathLike[str] | None = None) -> Any:
    if examples is not None:
        from bindsearch.fewshot import ExampleLabels

        return ExampleLabels(space, examples)
    from bindsearch.classify import LabelSet

    return LabelSet(space, list(labels))


def _batch_size(modality: Modality, requested: int) -> int:
    # A video item is 15 views of 2 frames (27 MB as float32): smaller batches bound the memory.
    return min(requested, _VIDEO_BATCH) if modality is Modality.VIDEO else requested


