"""Warnings of worker processes, shown by the main process: each distinct one once, where it shows the rest.

A worker writing to stderr itself would tear a live progress display (its line
lands between two frames, which then stay on the screen), and every worker
would repeat the same warning (each builds its own copy of the model). So a
worker sends its log records, and Python warnings as records, through a queue;
a thread of the main process logs each distinct message once to the
"bindsearch" logger, whose handlers print it the way the main process's own
messages are printed (the command line prints above its live display).
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import threading
import warnings
from multiprocessing.context import BaseContext
from typing import Any

from bindsearch.errors import first_line

_LOGGER = "bindsearch"


def forward_to(queue: Any, level: int) -> None:
    """In a worker: bindsearch's log records of ``level`` or more, and Python warnings, go to ``queue``."""
    logger = logging.getLogger(_LOGGER)
    logger.handlers[:] = [logging.handlers.QueueHandler(queue)]
    logger.setLevel(level)
    logger.propagate = False

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        logger.warning("%s: %s", category.__name__, first_line(Warning(str(message))))

    warnings.showwarning = show


class WorkerLogs:
    """The queue workers send records to, and the thread that logs them here; ``close`` when the workers ended."""

    def __init__(self, context: BaseContext) -> None:
        self.queue = context.Queue()
        self.level = logging.getLogger(_LOGGER).getEffectiveLevel()
        self._seen: set[tuple[int, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._log_each_once, daemon=True, name="worker-logs")
        self._thread.start()

    def _log_each_once(self) -> None:
        logger = logging.getLogger(_LOGGER)
        while True:
            try:
                record = self.queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():  # asked to stop, and all that was sent is read
                    return
                continue
            key = (record.levelno, record.getMessage())
            if key not in self._seen:
                self._seen.add(key)
                logger.handle(record)

    def close(self) -> None:
        """Log what the ended workers sent (all of it was sent before they exited), then stop.

        No end marker goes through the queue: a worker killed while it wrote would hold the
        queue's write lock for good, and the marker would never arrive.
        """
        self._stop.set()
        self._thread.join()
        self.queue.close()
