"""Reading and embedding on a Ray cluster: the Preparer of ``index --ray``.

The tasks of a run go out as Ray Data datasets, one per modality, each mapped in batches by a pool of
actors that hold that modality's encoder: one GPU an actor where the cluster has GPUs, else a few CPUs
(as many threads as the local pipeline would give a worker). Each actor reads its batch's files itself
(so files must be readable on every node: shared storage), embeds them and sends back only vectors,
which stream into this process and are written through the library's writer as they come. Pieces of
long files, which a first read of the file asks for, go out in the next round.

Ray is imported only here, and only when ``--ray`` is given.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bindsearch.errors import UsageError
from bindsearch.modality import Modality
from bindsearch.spaces import Space

from .pipeline import Batcher, Prepared, Task, TaskQueue, default_embedding_workers, embed_results, prepare_task

log = logging.getLogger("bindsearch")

# A batch of results travels as one pickled row: vectors, hashes and reasons, never decoded media.
_COLUMN = "task"


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
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR, configure_logging=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local Ray"
            raise UsageError(f"cannot start or reach Ray at {where}: {str(exc).splitlines()[0]}") from None
        self.started_here = True
        self.startup_seconds = time.perf_counter() - began
        _quiet_ray_data()

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


def _quiet_ray_data() -> None:
    """No progress bars or execution logs of Ray Data's own: the run's bar says what happens."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    for name in ("ray", "ray.data", "ray.data._internal"):
        logging.getLogger(name).setLevel(logging.ERROR)


class EmbedActor:
    """One actor of a modality's pool: the space rebuilt from its spec (weights load on the first batch),
    reading and embedding batches of tasks."""

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

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        tasks: list[Task] = [task for row in batch[_COLUMN] for task in pickle.loads(row)]
        results = [self._read(task) for task in tasks]
        embed_results(self.space, tasks, results)
        return {_COLUMN: [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in results],
                "precision": [self.space.precision] * len(results)}

    def _read(self, task: Task) -> Prepared:
        if not os.path.lexists(task.path):  # the main process found it: this node does not see that storage
            return Prepared(task.index, chunk=task.chunk,
                            reason=f"not readable on Ray node {self.host}: index files on storage every node "
                                   f"reads (a shared folder), with the same path")
        return prepare_task(task, self.space, self.known, durations=self.durations)


class RayPreparer:
    """Runs a TaskQueue on a Ray cluster; results in the order they complete, with their vectors."""

    embeds = True

    def __init__(self, space: Space, known: set[tuple[str, Modality]], cluster: RayCluster,
                 durations: frozenset[Modality] = frozenset(), *, batch_size: int = 32, threads: int = 0) -> None:
        self.space = space
        self.known = known
        self.cluster = cluster
        self.durations = durations
        self.batch_size = max(1, batch_size)
        self.threads = threads  # per CPU actor; 0: as the local pipeline would give a worker on the cluster's CPUs
        self.precision: str | None = None  # what the actors embedded in (a GPU node's may differ from here)

    def run(self, queue: TaskQueue) -> Iterator[Prepared]:
        self.cluster.connect()
        while True:
            batches = Batcher(queue, lambda _: self.batch_size)
            round_ = list(iter(batches.next, None))
            if not round_:
                return
            yield from self._map(round_)  # the results may push pieces of long files: a next round

    def _map(self, batches: list[list[Task]]) -> Iterator[Prepared]:
        """One pool of actors for the round's batches (each of one modality, or one piece of a long file):
        an actor loads each modality's encoder when its first batch of it comes."""
        import ray.data

        cpus, gpus = self.cluster.resources()
        if not self.threads:
            self.threads = default_embedding_workers(max(1, cpus))[1]
        if gpus:
            pool, resources, threads = min(gpus, len(batches)), {"num_gpus": 1}, 0
        else:
            pool = max(1, min(cpus // self.threads, len(batches)))
            resources, threads = {"num_cpus": self.threads}, self.threads
        # Batches in order of modality: an actor then meets few modalities, and loads few encoders.
        batches.sort(key=lambda b: (b[0].modality.value, b[0].clips is not None))
        rows = [{_COLUMN: pickle.dumps(b, protocol=pickle.HIGHEST_PROTOCOL)} for b in batches]
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            EmbedActor, batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=pool),
            fn_constructor_kwargs={"spec": self.space.spec, "known": self.known, "durations": self.durations,
                                   "threads": threads},
            **resources)
        for row in dataset.iter_rows():
            self.precision = str(row["precision"])
            yield pickle.loads(row[_COLUMN])
