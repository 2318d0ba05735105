"""Files per second that leave out the cost of starting, and say nothing rather than guess.

The first batch of a run carries the model's loading (tens of seconds for a
large one) and the first advances come a few milliseconds apart: a rate taken
over either is off by orders of magnitude. So a rate is measured from the
moment the first batch is done, and only once enough files and time follow it.
"""

from __future__ import annotations

# Fewer files than this after the first batch, or less time, tell no rate.
MIN_FILES = 5
MIN_SECONDS = 1.0


def files_per_second(files: int, seconds: float) -> float | None:
    """``files`` done in ``seconds``; None when they are too few, or the time too short, to tell."""
    if files < 0 or seconds < 0:
        raise ValueError(f"files and seconds cannot be negative (got {files} files in {seconds} s)")
    if files < MIN_FILES or seconds < MIN_SECONDS:
        return None
    return files / seconds


def seconds_left(remaining: int, rate: float | None) -> float | None:
    """How long ``remaining`` files take at ``rate``; None without a rate."""
    if remaining < 0:
        raise ValueError(f"remaining files cannot be negative (got {remaining})")
    if rate is None or rate <= 0:
        return None
    return remaining / rate


class RateClock:
    """The running total of files done, seen after each batch; its rate starts at the first batch."""

    def __init__(self) -> None:
        self._first: tuple[float, int] | None = None  # (time, files done) once the first batch was done
        self._last: tuple[float, int] | None = None

    def done(self, total: int, now: float) -> None:
        """``total`` files (in all) are done at ``now`` (seconds of a monotonic clock)."""
        if self._first is None:
            self._first = (now, total)
        self._last = (now, total)

    def rate(self, now: float | None = None) -> float | None:
        """Files per second since the first batch: up to the last batch, or up to ``now`` if given."""
        if self._first is None or self._last is None:
            return None
        start, first_total = self._first
        end = self._last[0] if now is None else max(now, self._last[0])
        return files_per_second(self._last[1] - first_total, end - start)
