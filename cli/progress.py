"""A rich progress display for indexing runs, shown only when stderr is a terminal.

One line names the phase with a spinner (loading a model can take tens of
seconds with nothing else moving); once the files to read are known, one bar
per modality follows it: done of total, files per second and time left,
measured from the modality's first files done (not from the start, which loads
a model) and left blank until enough files and time tell them.
"""

from __future__ import annotations

import time
from datetime import timedelta
from types import TracebackType

from bindsearch.indexer import IndexObserver
from bindsearch.indexer.rates import RateClock, seconds_left
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
)
from rich.spinner import Spinner
from rich.text import Text

from .console import err

# The bar for an observer source that gives a total but no split by modality.
_ALL = "files"


class _RateColumn(ProgressColumn):
    """Files per second, worked out when a frame is drawn rather than on every file."""

    def __init__(self, clocks: dict[TaskID, RateClock]) -> None:
        super().__init__()
        self.clocks = clocks

    def render(self, task: Task) -> Text:
        speed = _rate(self.clocks, task)
        return Text(f"{speed:.1f} files/s" if speed else "", style="progress.data.speed")


class _TimeLeftColumn(ProgressColumn):
    """The time the files left take at the rate shown; blank while there is no rate."""

    def __init__(self, clocks: dict[TaskID, RateClock]) -> None:
        super().__init__()
        self.clocks = clocks

    def render(self, task: Task) -> Text:
        remaining = max(0, int((task.total or 0) - task.completed))
        left = seconds_left(remaining, _rate(self.clocks, task))
        shown = "" if left is None else str(timedelta(seconds=round(left)))
        return Text(shown, style="progress.remaining")


def _rate(clocks: dict[TaskID, RateClock], task: Task) -> float | None:
    # A modality still in progress is measured up to now, so that its rate falls while nothing comes.
    clock = clocks.get(task.id)
    if clock is None:
        return None
    return clock.rate() if task.finished else clock.rate(time.monotonic())


class RichIndexProgress(IndexObserver):
    """The phase with a spinner, then a bar per modality; transient: gone when the run ends.

    ``advanced`` only bumps one task's counter and notes the time: speeds, times and the total are
    computed when a frame is drawn (a few times a second), not per file.
    The display itself is ``__rich__``, so it can be printed for a snapshot.
    """

    def __init__(self, console: Console | None = None) -> None:
        console = console or err
        self._phase = "scanning"
        self._total = 0
        self._spinner = Spinner("dots", style="progress.spinner")
        # Per bar: its files done so far, and the clock its rate and time left are read from.
        self._done: dict[TaskID, int] = {}
        self._clocks: dict[TaskID, RateClock] = {}
        # The leading spaces set the modality names under the phase name, past the spinner.
        self._bars = Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(self._clocks),
            _TimeLeftColumn(self._clocks),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {}
        self._live = Live(console=console, transient=True, refresh_per_second=10, get_renderable=self.__rich__)

    def __enter__(self) -> RichIndexProgress:
        self._live.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.stop()

    def __rich__(self) -> RenderableType:
        text = Text(self._phase)
        if self._total:
            done = int(sum(task.completed for task in self._bars.tasks))
            text.append(f"  {done}/{self._total} files", style="progress.download")
        self._spinner.update(text=text)
        return Group(self._spinner, self._bars) if self._tasks else self._spinner

    def phase(self, name: str) -> None:
        self._phase = name

    def started(self, total: int, by_modality: dict[str, int] | None = None) -> None:
        self._total = total
        counts = by_modality if by_modality is not None else {_ALL: total}
        for modality, count in sorted(counts.items()):
            if count > 0 and modality not in self._tasks:
                self._tasks[modality] = self._bars.add_task(modality, total=count)

    def advanced(self, n: int = 1, modality: str | None = None) -> None:
        # A modality without a bar of its own counts on the single bar, if that is what there is.
        task = self._tasks.get(modality or _ALL, self._tasks.get(_ALL))
        if task is not None:
            self._bars.advance(task, n)
            self._done[task] = self._done.get(task, 0) + n
            self._clocks.setdefault(task, RateClock()).done(self._done[task], time.monotonic())
