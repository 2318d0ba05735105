"""One indexing run: scan, diff against the library (mark and sweep), embed what changed, commit in batches."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bindsearch.errors import BindsearchError, SpaceError, UsageError
from bindsearch.library import Library, LibraryWriter, StoredItem
from bindsearch.library.schema import STATUS_OK, STATUS_SKIPPED
from bindsearch.modality import Modality

from .pipeline import Prepared, Preparer, Task, default_workers, describe, prepare_task
from .report import IndexObserver, IndexReport
from .scan import FoundFile, scan

# Staged metadata changes (touches, moves, failures) are committed at least this often.
_MAX_STAGED = 1000
# Below this many files to read, files are read in the main process (no workers to start).
_MIN_FILES_FOR_WORKERS = 48
_VIDEO_BATCH = 4


@dataclass
class _Pending:
    file: FoundFile
    old: StoredItem | None
    content_hash: str
    prepared: Any


def index_paths(
    library: Library,
    paths: Sequence[str | os.PathLike[str]],
    *,
    modality: Modality | str | None = None,
    observer: IndexObserver | None = None,
    batch_size: int = 32,
    workers: int | None = None,
) -> IndexReport:
    """Bring the library up to date with the files under ``paths``.

    Unchanged files (same size and mtime) cost a stat; changed ones are
    embedded again; a file whose content is already known (moved, renamed,
    copied) reuses its vector; items whose file is gone are removed. A file that
    cannot be read is recorded as failed with its reason, and the run goes on.
    ``modality`` forces one modality for every file found. Files are read in
    ``workers`` processes (default: one per core but one; 0 reads them in this
    process) while batches of ``batch_size`` are embedded. Work is committed
    in batches; a KeyboardInterrupt commits what is done and returns a report
    with ``interrupted`` set.
    """
    observer = observer or IndexObserver()
    roots, forced = check_arguments(paths, modality)
    space = library.space
    if forced is not None and forced not in space.modalities:
        have = ", ".join(sorted(m.value for m in space.modalities))
        raise UsageError(f"space {space.name} cannot embed {forced.value} (it embeds: {have})")
    if batch_size < 1:
        raise UsageError("batch size must be at least 1")
    if workers is not None and workers < 0:
        raise UsageError("the number of workers cannot be negative")

    report = IndexReport()
    started = time.monotonic()
    with library.writer() as writer:
        run = _Run(library, writer, report, observer, batch_size, workers)
        try:
            run.execute(roots, forced)
        except KeyboardInterrupt:
            report.interrupted = True
            writer.commit()
        except BindsearchError:
            writer.commit()  # keep what is done (failures, moves) before giving up
            raise
        observer.phase("saving")
    report.seconds = time.monotonic() - started
    return report


def check_arguments(
    paths: Sequence[str | os.PathLike[str]], modality: Modality | str | None = None
) -> tuple[list[str], Modality | None]:
    """The absolute roots to index and the forced modality; UsageError for a missing path or unknown modality.

    Cheap, so that a front end can check its arguments before it opens (or creates) a library.
    """
    if not paths:
        raise UsageError("give at least one file or folder to index")
    roots = []
    for p in paths:
        root = os.path.abspath(os.fspath(p))
        if not os.path.lexists(root):
            raise UsageError(f"no such file or folder: {os.fspath(p)}")
        roots.append(root)
    return roots, Modality.parse(modality) if modality is not None else None


class _Run:
    def __init__(self, library: Library, writer: LibraryWriter, report: IndexReport,
                 observer: IndexObserver, batch_size: int, workers: int | None) -> None:
        self.library = library
        self.space = library.space
        self.writer = writer
        self.report = report
        self.observer = observer
        self.batch_size = batch_size
        self.workers = workers
        self.pending: dict[Modality, list[_Pending]] = {}
        self.model_used = False
        self.embedded_by_modality: dict[Modality, int] = {}

    def execute(self, roots: list[str], forced: Modality | None) -> None:
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
                     soundtracks=Modality.VIDEO in modalities and Modality.AUDIO in modalities)
        stored = {(item.path, item.modality): item for item in self.library.items_under(roots)}
        for folder, reason in found.unreadable_dirs:
            self.report.fail(folder, f"folder not indexed: {reason}")

        work: list[tuple[FoundFile, StoredItem | None]] = []
        seen: set[tuple[str, Modality]] = set()
        for f in found.files:
            if f.modality not in modalities:
                self.report.skipped += 1
                continue
            key = (f.path, f.modality)
            seen.add(key)
            old = stored.get(key)
            same_stat = old is not None and old.size == f.size and old.mtime_ns == f.mtime_ns
            if f.error is not None:
                self._fail(f, old, f.error)
            elif same_stat and old.status == STATUS_OK:
                self.report.unchanged += 1
            elif same_stat and old.status == STATUS_SKIPPED:
                self.report.skipped += 1
            else:
                work.append((f, old))

        # Items whose file is gone, unless it lies in a folder we could not read.
        blocked = [d.rstrip(os.sep) + os.sep for d, _ in found.unreadable_dirs]
        gone = {
            key: item for key, item in stored.items()
            if key not in seen and not any(item.path.startswith(b) for b in blocked)
        }
        gone_by_hash = {(item.content_hash, item.modality): key for key, item in gone.items()
                        if item.content_hash and item.status == STATUS_OK}
        return work, gone, gone_by_hash

    def _embed(self, work: list, gone: dict, gone_by_hash: dict) -> None:
        """Read, embed and commit the files to read; then remove the items that are gone."""
        by_modality: dict[str, int] = {}
        for f, _ in work:
            by_modality[f.modality.value] = by_modality.get(f.modality.value, 0) + 1
        self.observer.started(len(work), by_modality)
        self.observer.phase("reading files")
        started = time.monotonic()
        for result in self._preparer(work).run(self._tasks(work)):
            f, old = work[result.index]
            if result.size or result.mtime_ns:
                f = f._replace(size=result.size, mtime_ns=result.mtime_ns)
            self._handle(f, old, result, gone, gone_by_hash)
            if self.writer.pending >= _MAX_STAGED:
                self.writer.commit()
        for modality in list(self.pending):
            self._flush(modality)
        elapsed = max(time.monotonic() - started, 1e-9)
        self.report.rates = {m.value: round(n / elapsed, 2) for m, n in sorted(self.embedded_by_modality.items())}
        for item in gone.values():
            self.writer.remove(item.id, item.modality)
            self.report.removed += 1
        self.writer.commit()

    def _tasks(self, work: list[tuple[FoundFile, StoredItem | None]]) -> list[Task]:
        return [
            Task(i, f.path, f.modality, old.content_hash if old is not None and old.status == STATUS_OK else None)
            for i, (f, old) in enumerate(work)
        ]

    def _preparer(self, work: list[tuple[FoundFile, StoredItem | None]]) -> Preparer:
        workers = self.workers
        if workers is None:
            # Starting workers costs a few seconds (each imports torch): not worth it for a handful of files.
            workers = default_workers() if len(work) >= _MIN_FILES_FOR_WORKERS else 0
        known = self.library.known_hashes({f.modality for f, _ in work}) if work else set()
        return Preparer(self.space, known, workers, window=self.batch_size + 4 * max(workers, 1))

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
            self._handle(f, old, prepare_task(Task(0, f.path, f.modality, None), self.space, set()), gone,
                         gone_by_hash)
            return
        elif not result.known:
            if not self.model_used:
                self.observer.phase("loading model")  # the first batch loads the model: it takes a while
            batch = self.pending.setdefault(f.modality, [])
            batch.append(_Pending(f, old, result.content_hash, result.prepared))
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
            if old is not None:
                self.writer.remove(old.id, old.modality)  # frees (path, modality) for the moved item
            self.writer.move(gone.pop(moved_key).id, f.path, f.size, f.mtime_ns)
            self.report.moved += 1
            return True
        self.writer.commit()  # a copy of a file embedded earlier in this run is found once committed
        known = self.library.vector_by_hash(digest, f.modality)
        if known is None:
            return False
        self.writer.put(f.path, f.modality, f.size, f.mtime_ns, digest, known[1])
        self._count_embedded(old)
        return True

    def _flush(self, modality: Modality) -> None:
        batch = self.pending.pop(modality, [])
        if not batch:
            return
        encoder = self.space.encoder(modality)
        try:
            vectors = encoder.embed_batch([p.prepared for p in batch])
            results: list[Any] = list(vectors)
        except SpaceError:
            raise
        except Exception:
            # One bad input can sink a batch: embed one by one to find it.
            results = []
            for p in batch:
                try:
                    results.append(encoder.embed_batch([p.prepared])[0])
                except SpaceError:
                    raise
                except Exception as exc:
                    results.append(exc)
        if not self.model_used:
            self.model_used = True
            self.observer.phase("embedding")
        for p, result in zip(batch, results):
            if isinstance(result, Exception):
                self._fail(p.file, p.old, describe(result))
            else:
                self.writer.put(p.file.path, modality, p.file.size, p.file.mtime_ns, p.content_hash, result)
                self.report.embedded += 1
                self.embedded_by_modality[modality] = self.embedded_by_modality.get(modality, 0) + 1
                self._count_embedded(p.old)
        self.writer.commit()
        self.observer.advanced(len(batch), modality.value)

    def _count_embedded(self, old: StoredItem | None) -> None:
        if old is not None and old.status == STATUS_OK:
            self.report.updated += 1
        else:
            self.report.added += 1

    def _fail(self, f: FoundFile, old: StoredItem | None, reason: str) -> None:
        self.writer.put_failed(f.path, f.modality, f.size, f.mtime_ns, reason)
        self.report.fail(f.path, reason)


def _batch_size(modality: Modality, requested: int) -> int:
    # A video item is 15 views of 2 frames (27 MB as float32): smaller batches bound the memory.
    return min(requested, _VIDEO_BATCH) if modality is Modality.VIDEO else requested


