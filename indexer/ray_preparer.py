"""Reading and embedding on a Ray cluster: the Preparer of ``index --ray``.

A run's batches (one modality each, or one piece of a long file) go to one pool of actors that lives
as long as the run: one GPU an actor where the cluster has GPUs, else a few CPUs (as many threads as
the local pipeline would give a worker). Each actor rebuilds the space from its spec, loads an
encoder when its first batch of that modality comes, reads its batches' files itself (so files must
be readable on every node: shared storage) and sends back only vectors, which stream into this
process and are written through the library's writer as they come. As in the local pipeline, two
batches are in flight per actor (one embedding, one waiting), and pieces of long files that a first
read asks for join the queue and go to the same actors: no actor starts, and no encoder loads, twice.

Plain actors rather than a Ray Data pipeline: the queue grows while it runs (long files' pieces), and
a dataset a round would start its actors and load their encoders again each round; Ray Data's own
actors and executor also take a share of a small node's cores.

Ray is imported only here, and only when ``--ray`` is given.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bindsearch.errors import BindsearchError, UsageError, first_line
from bindsearch.modality import Modality
from bindsearch.spaces import Space

from .isolation import load_read_hook
from .pipeline import Batcher, Prepared, Task, TaskQueue, default_embedding_workers, embed_results, prepare_hooked

log = logging.getLogger("bindsearch")


@dataclass
class RayCluster:
    """Where a run's work goes: ``address`` (None: a local Ray started for the run, or one already
    running in this process), and what connecting took."""

    address: str | None = None
    startup_seconds: float = 0.0
    started_here: bool = False

    def connect(self) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError("--ray needs Ray: pip install 'bindsearch[ray]'") from None
        if ray.is_initialized():
            return
        began = time.perf_counter()
        # Ray's own notices (its C++ core's included) go to its log files under /tmp/ray, not the terminal.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
        logging.getLogger("ray").setLevel(logging.ERROR)
        # Ray runs its workers at niceness 15, so that a busy node still serves its raylet. A Ray started
        # for the run has no other work than the run's: its actors embed at the priority the local
        # pipeline's workers have, not behind every other process on the machine.
        config = {"worker_niceness": 0} if self.address is None and not os.environ.get("RAY_ADDRESS") else None
        try:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR, configure_logging=True, _system_config=config)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local Ray"
            raise UsageError(f"cannot start or reach Ray at {where}: {str(exc).splitlines()[0]}") from None
        self.started_here = True
        self.startup_seconds = time.perf_counter() - began
        # Nor its error notices, which it prints on stdout (where --json writes): a file whose actor died
        # is reported by the run itself. (A private switch, the one ray.util.rpdb uses.)
        worker = getattr(getattr(ray, "_private", None), "worker", None)
        if hasattr(worker, "_worker_logs_enabled"):
            worker._worker_logs_enabled = False  # type: ignore[union-attr]

    def close(self) -> None:
        if self.started_here:
            import ray

            ray.shutdown()
            self.started_here = False

    def resources(self) -> tuple[int, int]:
        """(CPUs, GPUs) of the cluster."""
        import ray

        have = ray.cluster_resources()
        return int(have.get("CPU", 0)), int(have.get("GPU", 0))


def ray_cluster(address: str | None) -> RayCluster | None:
    """The cluster ``index --ray ADDRESS`` names: None without --ray, "local" a Ray started for the run
    (or the one this process already runs), else an address as ``ray.init`` takes it ("auto", "ray://h:10001")."""
    if address is None:
        return None
    address = address.strip()
    if not address:
        raise UsageError("--ray needs an address, or 'local' for a Ray started on this machine")
    return RayCluster(None if address == "local" else address)


class EmbedActor:
    """One actor of the pool: the space rebuilt from its spec (an encoder loads with its modality's first
    batch), reading and embedding batches of tasks."""

    def __init__(self, spec: dict[str, Any], known: set[tuple[str, Modality]], durations: frozenset[Modality],
                 threads: int) -> None:
        from bindsearch.spaces.registry import space_from_spec

        if threads > 0:
            import torch

            torch.set_num_threads(threads)
        self.space = space_from_spec(spec, origin="the library", stored=True)
        self.known = known
        self.durations = durations
        self.host = socket.gethostname()
        self.read_hook = load_read_hook()

    def ready(self) -> str:
        return self.host

    def embed(self, tasks: list[Task]) -> tuple[str, list[Prepared]]:
        """The batch's results with their vectors, and the precision they were embedded in."""
        results = [self._read(task) for task in tasks]
        embed_results(self.space, tasks, results)
        return self.space.precision, results

    def _read(self, task: Task) -> Prepared:
        if not os.path.lexists(task.path):  # the main process found it: this node does not see that storage
            return Prepared(task.index, chunk=task.chunk,
                            reason=f"not readable on Ray node {self.host}: index files on storage every node "
                                   f"reads (a shared folder), with the same path")
        return prepare_hooked(task, self.space, self.known, self.durations, self.read_hook)


@dataclass(eq=False)  # one actor is itself only
class _Actor:
    handle: Any
    running: int = 0  # batches sent, not yet back
    alone: bool = False  # it reads a suspect: nothing else goes to it meanwhile


class RayPreparer:
    """Runs a TaskQueue on a Ray cluster; results in the order they complete, with their vectors."""

    embeds = True

    def __init__(self, space: Space, known: set[tuple[str, Modality]], cluster: RayCluster,
                 durations: frozenset[Modality] = frozenset(), *,
                 batch_size: Callable[[Modality], int] = lambda _: 32, threads: int = 0) -> None:
        self.space = space
        self.known = known
        self.cluster = cluster
        self.durations = durations
        self.batch_size = batch_size
        self.threads = threads  # per CPU actor; 0: as the local pipeline would give a worker on the cluster's CPUs
        self.precision: str | None = None  # what the actors embedded in (a GPU node's may differ from here)
        # Seconds from asking for the actors until the first was up (its process started, the space rebuilt).
        self.actors_seconds: float | None = None

    def run(self, queue: TaskQueue) -> Iterator[Prepared]:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        self.cluster.connect()
        batches = Batcher(queue, self.batch_size)
        size, options, threads = self._pool_size()
        waiting: list[list[Task]] = []  # the first batches: no more actors start than they keep busy
        while len(waiting) < 2 * size and (batch := batches.next()) is not None:
            waiting.append(batch)
        if not waiting:
            return
        began = time.perf_counter()
        actor_class = ray.remote(EmbedActor).options(max_restarts=0, max_task_retries=0, **options)
        # The known hashes go to the object store once, whatever the number of actors (or of replacements).
        args = (self.space.spec, ray.put(self.known), self.durations, threads)
        actors = [_Actor(actor_class.remote(*args)) for _ in range(min(size, len(waiting)))]
        ready = {actor.handle.ready.remote(): actor for actor in actors}
        running: dict[Any, tuple[_Actor, list[Task], bool]] = {}
        suspects: deque[Task] = deque()  # tasks of a batch lost with its actor: read again one by one

        def send(actor: _Actor, batch: list[Task], suspect: bool = False) -> None:
            running[actor.handle.embed.remote(batch)] = (actor, batch, suspect)
            actor.running += 1
            actor.alone = suspect

        def top_up() -> None:
            for actor in actors:  # an actor that reads a suspect reads it alone, so that a death names it
                while suspects and actor.running == 0:
                    send(actor, [suspects.popleft()], suspect=True)
                while not suspects and not actor.alone and actor.running < 2:
                    batch = waiting.pop(0) if waiting else batches.next()
                    if batch is None:
                        return
                    send(actor, batch)

        try:
            top_up()
            while running:
                done, _ = ray.wait([*ready, *running], num_returns=1)
                ref = done[0]
                if ref in ready:
                    del ready[ref]
                    if self.actors_seconds is None:
                        self.actors_seconds = time.perf_counter() - began
                    continue
                actor, batch, suspect = running.pop(ref)
                actor.running -= 1
                actor.alone = False
                try:
                    self.precision, results = ray.get(ref)
                except RayActorError as exc:  # its process died (a decoder's crash, the out-of-memory killer)
                    results = self._lost(batch, suspect, exc, suspects)
                    if actor in actors:
                        actors[actors.index(actor)] = _Actor(actor_class.remote(*args))
                except RayTaskError as exc:
                    raise exc.cause if isinstance(exc.cause, BindsearchError) else exc from None
                top_up()
                yield from results
                top_up()  # tasks pushed while the results were handled
        finally:
            for actor in actors:
                ray.kill(actor.handle)

    def _pool_size(self) -> tuple[int, dict[str, Any], int]:
        """(actors, their resources, threads each): an actor a GPU, else the local pipeline's workers
        on the cluster's CPUs."""
        cpus, gpus = self.cluster.resources()
        if gpus:
            return gpus, {"num_gpus": 1}, 0
        if not self.threads:
            self.threads = default_embedding_workers(max(1, cpus))[1]
        return max(1, cpus // self.threads), {"num_cpus": self.threads}, self.threads

    @staticmethod
    def _lost(batch: list[Task], suspect: bool, exc: Exception, suspects: deque[Task]) -> list[Prepared]:
        """A batch whose actor died: each of its tasks is read again alone; one that was already alone failed."""
        if not suspect:
            suspects.extend(batch)
            return []
        task = batch[0]
        why = first_line(exc).split(" (", 1)[0] if str(exc).strip() else "no details"
        return [Prepared(task.index, chunk=task.chunk,
                         reason=f"the Ray actor reading it ended abruptly ({why})")]
