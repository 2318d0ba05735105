"""Several index runs writing one library at once (vectors in Milvus, metadata in PostgreSQL): each file is
embedded by one of them.

A run registers in the ``writers`` table and keeps a heartbeat there (a thread, every quarter of the claim
lifetime). Before it reads a file it claims it, a block of files at a time, in the ``claims`` table: one
INSERT per file that takes the row only where it is free, or held by a run whose heartbeat is older than
the lifetime (a run killed on another machine), or by a process of this machine that is gone (a run
killed here: taken over at once). Of the files it got, those another run has committed since this one
scanned them are left alone. A file held by a live run is that run's: it is tried once more when the
queue is empty (its run may have died meanwhile), then left to it. Claims go when the run ends.

Heartbeats are this machine's clock: clocks of the machines writing one library must agree to well
within the lifetime (``BINDSEARCH_CLAIM_TTL``, 60 s).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from sqlalchemy import Engine

from bindsearch.library.database import raw_cursor
from bindsearch.processes import process_alive

from .pipeline import Task, TaskQueue

log = logging.getLogger("bindsearch")

TTL_VARIABLE = "BINDSEARCH_CLAIM_TTL"
DEFAULT_TTL = 60.0
BLOCK = 64  # files claimed per round trip: a run's share of a folder is taken as it goes, not all at once

_CLAIM = ("INSERT INTO claims (path, modality, owner) VALUES (?, ?, ?) ON CONFLICT (path, modality) DO UPDATE "
          "SET owner = excluded.owner WHERE claims.owner = excluded.owner OR claims.owner NOT IN "
          "(SELECT owner FROM writers WHERE heartbeat >= ?)")

Key = tuple[bytes, str]  # (path as the OS's bytes, modality)


def claim_ttl() -> float:
    try:
        value = float(os.environ.get(TTL_VARIABLE, DEFAULT_TTL))
    except ValueError:
        return DEFAULT_TTL
    return value if value > 0 else DEFAULT_TTL


class Claims:
    """This run's registration and claims in a library's database."""

    def __init__(self, engine: Engine, ttl: float | None = None) -> None:
        self.engine = engine
        self.ttl = ttl or claim_ttl()
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:{secrets.token_hex(4)}"
        self._stop = threading.Event()
        self._run("INSERT INTO writers (owner, heartbeat) VALUES (?, ?)", (self.owner, time.time()))
        self._forget_dead_here()
        # What runs that are gone left: the claims of files they had committed (or never read) free no one.
        self._run("DELETE FROM claims WHERE owner NOT IN (SELECT owner FROM writers WHERE heartbeat >= ?)",
                  (time.time() - self.ttl,))
        self._run("DELETE FROM writers WHERE heartbeat < ?", (time.time() - max(100 * self.ttl, 86400),))
        self._beat = threading.Thread(target=self._heartbeat, name="bindsearch-heartbeat", daemon=True)
        self._beat.start()

    def _run(self, sql: str, params: Sequence[object]) -> None:
        with raw_cursor(self.engine) as cursor:
            cursor.execute(sql, params)
            cursor.raw.connection.commit()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                self._run("UPDATE writers SET heartbeat = ? WHERE owner = ?", (time.time(), self.owner))
            except Exception as exc:  # (a database restarting: the next beat tries again, claims last the TTL)
                log.warning("could not renew this run's claims on its files: %s", exc)

    def claim(self, keys: Sequence[Key]) -> set[Key]:
        """Those of ``keys`` this run holds now (taken, or held already)."""
        if not keys:
            return set()
        self._forget_dead_here()
        live_since = time.time() - self.ttl
        with raw_cursor(self.engine) as cursor:
            cursor.executemany(_CLAIM, [(path, modality, self.owner, live_since) for path, modality in keys])
            paths = sorted({path for path, _ in keys})
            held: set[Key] = set()
            for begin in range(0, len(paths), 500):
                chunk = paths[begin : begin + 500]
                rows = cursor.execute(f"SELECT path, modality FROM claims WHERE owner = ? AND path IN "
                                      f"({','.join('?' * len(chunk))})", [self.owner, *chunk]).fetchall()
                held.update((bytes(path), modality) for path, modality in rows)
            cursor.raw.connection.commit()
        return held & set(keys)

    def _forget_dead_here(self) -> None:
        """Unregister the runs of this machine whose process is gone: their claims are free at once."""
        with raw_cursor(self.engine) as cursor:
            owners = [row[0] for row in cursor.execute("SELECT owner FROM writers").fetchall()]
            dead = [o for o in owners if o != self.owner and _of_dead_process(o, self.host)]
            for owner in dead:
                cursor.execute("DELETE FROM claims WHERE owner = ?", (owner,))
                cursor.execute("DELETE FROM writers WHERE owner = ?", (owner,))
            if dead:
                cursor.raw.connection.commit()

    def close(self) -> None:
        """Give up every claim and the registration (the end of the run)."""
        self._stop.set()
        self._beat.join(timeout=5)
        with raw_cursor(self.engine) as cursor:
            cursor.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
            cursor.execute("DELETE FROM writers WHERE owner = ?", (self.owner,))
            cursor.raw.connection.commit()


def _of_dead_process(owner: str, host: str) -> bool:
    parts = owner.rsplit(":", 2)
    return len(parts) == 3 and parts[0] == host and parts[1].isdigit() and not process_alive(int(parts[1]))


class ClaimingQueue(TaskQueue):
    """A TaskQueue that hands out a whole file only once this run holds its claim and no other run has
    committed it since the scan (pieces of a file belong to whoever read it whole)."""

    def __init__(self, tasks: Sequence[Task], claims: Claims, key_of: Callable[[Task], Key],
                 done_elsewhere: Callable[[Sequence[Task]], set[int]], left: Callable[[Task], None]) -> None:
        super().__init__(tasks)
        self.claims = claims
        self._key_of = key_of
        self._done_elsewhere = done_elsewhere  # tasks -> the indexes of those another run has committed since
        self._left = left  # a task given up: another run's file
        self._held: set[int] = set()
        self._deferred: list[Task] = []
        self._retried = False

    def pop(self) -> Task | None:
        while True:
            task = super().pop()
            if task is None:
                if self._deferred and not self._retried:  # their runs may have ended, or died, meanwhile
                    self._retried = True
                    self._tasks.extend(self._deferred)
                    self._deferred = []
                    continue
                for leftover in self._deferred:
                    self._left(leftover)
                self._deferred = []
                return None
            if task.chunk >= 0 or task.index in self._held:
                return task
            block = [task] + [t for t in list(self._tasks)[: BLOCK - 1] if t.chunk < 0 and t.index not in self._held]
            held = self.claims.claim([self._key_of(t) for t in block])
            got = [t for t in block if self._key_of(t) in held]
            done = self._done_elsewhere(got) if got else set()
            decided = {t.index for t in block}
            self._tasks = deque(t for t in self._tasks if t.chunk >= 0 or t.index not in decided)
            for t in block:
                if t.index in done:
                    self._left(t)
                elif self._key_of(t) in held:
                    self._held.add(t.index)
                else:
                    self._deferred.append(t)
            keep = [t for t in block if t.index in self._held]
            self._tasks.extendleft(reversed(keep))
