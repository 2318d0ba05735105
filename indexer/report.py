"""What an indexing run did, and the hooks a front end uses to show its progress."""

from __future__ import annotations

from dataclasses import dataclass, field

from bindsearch.library import FileError


@dataclass
class IndexReport:
    """Counts of an indexing run. ``errors`` holds one line per failed file.

    added: new items embedded (or copied from an identical file); updated:
    items whose file changed and were embedded again; unchanged: same size
    and mtime (or same content); moved: files found under a new path whose
    vector was kept; removed: items whose file is gone; failed: files that
    could not be indexed, each once (a video whose frames and soundtrack
    both fail is one failed file, with the first reason); skipped: media the
    space has no encoder for (``unsupported`` of them), and files with nothing
    of a modality in them (a video without a soundtrack).
    still_failed: those of the failed files that failed before and have not
    changed since: not read again, reported with the reason stored.
    """

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    failed: int = 0
    still_failed: int = 0
    skipped: int = 0
    unsupported: int = 0
    embedded: int = 0
    # Files another index run writing the library at the same time read (or was reading) instead of this one.
    left_to_others: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    # Files embedded per second, per modality, from its first embedded batch on (model loading left out);
    # None when too few files or too short a time followed that batch to tell.
    rates: dict[str, float | None] = field(default_factory=dict)
    # Time windows of long audio and video embedded, per modality.
    windows: dict[str, int] = field(default_factory=dict)
    # What the models computed in ("fp32", "bf16", "fp16"); None when nothing was embedded.
    precision: str | None = None
    window_settings_changed: bool = False
    # Seconds it took to start or reach Ray (``index --ray``; None without it), left out of ``rates``.
    ray_startup_seconds: float | None = None
    # Of ``seconds`` too: from asking Ray for the actors until the first was up (process started, space rebuilt).
    ray_actors_seconds: float | None = None
    errors: list[FileError] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._failed_paths = {e.path for e in self.errors}

    def fail(self, path: str, reason: str) -> None:
        """Count ``path`` as failed, unless it is already (its other item failed first)."""
        if path in self._failed_paths:
            return
        self._failed_paths.add(path)
        self.failed += 1
        self.errors.append(FileError(path, reason))

    def skip_unsupported(self) -> None:
        """Count a file of a modality the space has no encoder for."""
        self.skipped += 1
        self.unsupported += 1


class IndexObserver:
    """Receives progress events from ``index_paths``; every method is optional (no-op here)."""

    def phase(self, name: str) -> None:
        """The run entered a phase: "scanning", "reading files", "loading model", "embedding", "saving"."""

    def started(self, total: int, by_modality: dict[str, int] | None = None) -> None:
        """``total`` files are new or changed and will be read; ``by_modality`` splits them per modality."""

    def advanced(self, n: int = 1, modality: str | None = None) -> None:
        """``n`` more of those files, of ``modality``, are done (embedded, reused or failed)."""
