"""How many worker processes the memory allows.

Each worker is a Python process with torch and, on a CPU, its own model activations: about 0.75 GB
each (measured: eight CPU workers took 5.8 GB). More workers than the free memory holds get the run
killed by the kernel's out-of-memory killer, so a request for more is lowered.
"""

from __future__ import annotations

WORKER_BYTES = 750 * 2**20


def available_memory() -> int | None:
    """Bytes of memory free for new processes: the system's MemAvailable, less if a cgroup limit is
    nearer; None when it cannot be told (not Linux)."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:  # "max", or v1's huge number: no limit
            found.append(max(0, int(limit) - usage))
    return min(found) if found else None


def workers_memory_allows(requested: int, available: int | None, per_worker: int = WORKER_BYTES) -> int:
    """``requested`` workers, or fewer (at least one) when ``available`` bytes do not hold them all."""
    if requested < 1:
        raise ValueError(f"workers must be at least 1, not {requested}")
    if available is None:
        return requested
    return max(1, min(requested, available // per_worker))
