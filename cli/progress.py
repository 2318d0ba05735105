"""A rich progress display for indexing runs, shown only when stderr is a terminal."""

from __future__ import annotations

from types import TracebackType

from bindsearch.indexer import IndexObserver
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from .console import err


class RichIndexProgress(IndexObserver):
    """Files done of files to read, files per second and time left; the phase as the label."""

    def __init__(self) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichIndexProgress:
        self._progress.start()
        self._task = self._progress.add_task("scanning", total=None, rate="")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def phase(self, name: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, description=name)

    def started(self, total: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, total=total, completed=0)

    def advanced(self, n: int = 1) -> None:
        if self._task is None:
            return
        self._progress.advance(self._task, n)
        task = self._progress.tasks[0]
        speed = task.finished_speed or task.speed
        self._progress.update(self._task, rate=f"{speed:.1f} files/s" if speed else "")
