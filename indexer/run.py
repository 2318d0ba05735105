"""One indexing run: scan, diff against the library (mark and sweep), embed what changed, commit in batches."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bindsearch.errors import BindsearchError, MediaError, NothingToEmbed, SpaceError, UsageError
from bindsearch.library import Library, LibraryWriter, StoredItem
from bindsearch.library.schema import STATUS_OK, STATUS_SKIPPED
from bindsearch.modality import Modality

from .hashing import content_hash
from .report import IndexObserver, IndexReport
from .scan import FoundFile, scan

# Staged metadata changes (touches, moves, failures) are committed at least this often.
_MAX_STAGED = 1000


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
) -> IndexReport:
    """Bring the library up to date with the files under ``paths``.

    Unchanged files (same size and mtime) cost a stat; changed ones are
    embedded again; a file whose content is already known (moved, renamed,
    copied) reuses its vector; items whose file is gone are removed. A file that
    cannot be read is recorded as failed with its reason, and the run goes on.
    ``modality`` forces one modality for every file found. Work is committed
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

    report = IndexReport()
    started = time.monotonic()
    with library.writer() as writer:
        run = _Run(library, writer, report, observer, batch_size)
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
                 observer: IndexObserver, batch_size: int) -> None:
        self.library = library
        self.space = library.space
        self.writer = writer
        self.report = report
        self.observer = observer
        self.batch_size = batch_size
        self.pending: dict[Modality, list[_Pending]] = {}
        self.model_used = False

    def execute(self, roots: list[str], forced: Modality | None) -> None:
        self.observer.phase("scanning")
        modalities = self.space.modalities
        found = scan(roots, forced, exclude=[str(self.library.path)],
                     soundtracks=Modality.VIDEO in modalities and Modality.AUDIO in modalities)
        stored = {(item.path, item.modality): item for item in self.library.items_under(roots)}
        for folder, reason in found.unreadable_dirs:
            self.report.fail(folder, f"folder not indexed: {reason}")

        work: list[tuple[FoundFile, StoredItem | None]] = []
        seen: set[tuple[str, Modality]] = set()
        for f in found.files:
            if f.modality not in self.space.modalities:
                self.report.skipped += 1
                continue
            key = (f.path, f.modality)
            seen.add(key)
            old = stored.get(key)
            same_stat = old is not None and (old.size, old.mtime_ns) == (f.size, f.mtime_ns)
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

        self.observer.started(len(work))
        self.observer.phase("embedding")
        for f, old in work:
            self._process(f, old, gone, gone_by_hash)
            if self.writer.pending >= _MAX_STAGED:
                self.writer.commit()
        for modality in list(self.pending):
            self._flush(modality)
        for item in gone.values():
            self.writer.remove(item.id, item.modality)
            self.report.removed += 1
        self.writer.commit()

    def _process(self, f: FoundFile, old: StoredItem | None, gone: dict, gone_by_hash: dict) -> None:
        try:
            digest = content_hash(f.path)
        except MediaError as exc:
            self._fail(f, old, exc.reason)
            self.observer.advanced()
            return
        if old is not None and old.status == STATUS_OK and old.content_hash == digest:
            self.writer.touch(old.id, f.size, f.mtime_ns)  # touched, not changed
            self.report.unchanged += 1
            self.observer.advanced()
            return
        moved_key = gone_by_hash.pop((digest, f.modality), None)
        if moved_key is not None:
            if old is not None:
                self.writer.remove(old.id, old.modality)  # frees (path, modality) for the moved item
            self.writer.move(gone.pop(moved_key).id, f.path, f.size, f.mtime_ns)
            self.report.moved += 1
            self.observer.advanced()
            return
        known = self.library.vector_by_hash(digest, f.modality)
        if known is not None:
            self.writer.put(f.path, f.modality, f.size, f.mtime_ns, digest, known[1])
            self._count_embedded(old)
            self.observer.advanced()
            return
        if not self.model_used:
            # The first file that needs the model: importing and loading it takes a while.
            self.observer.phase("loading model")
        try:
            prepared = self.space.encoder(f.modality).prepare(Path(f.path))
        except NothingToEmbed as exc:
            self.writer.put_failed(f.path, f.modality, f.size, f.mtime_ns, exc.reason, status=STATUS_SKIPPED)
            self.report.skipped += 1
            self.observer.advanced()
            return
        except MediaError as exc:
            self._fail(f, old, exc.reason)
            self.observer.advanced()
            return
        except Exception as exc:  # a decoder's own exception: record it, keep going
            self._fail(f, old, _describe(exc))
            self.observer.advanced()
            return
        batch = self.pending.setdefault(f.modality, [])
        batch.append(_Pending(f, old, digest, prepared))
        if len(batch) >= self.batch_size:
            self._flush(f.modality)

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
                self._fail(p.file, p.old, _describe(result))
            else:
                self.writer.put(p.file.path, modality, p.file.size, p.file.mtime_ns, p.content_hash, result)
                self.report.embedded += 1
                self._count_embedded(p.old)
        self.writer.commit()
        self.observer.advanced(len(batch))

    def _count_embedded(self, old: StoredItem | None) -> None:
        if old is not None and old.status == STATUS_OK:
            self.report.updated += 1
        else:
            self.report.added += 1

    def _fail(self, f: FoundFile, old: StoredItem | None, reason: str) -> None:
        self.writer.put_failed(f.path, f.modality, f.size, f.mtime_ns, reason)
        self.report.fail(f.path, reason)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
