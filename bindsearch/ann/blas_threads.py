"""Keeping NumPy's BLAS off the cores while FAISS builds an index.

NumPy and FAISS each bring a BLAS with a thread pool of its own. After a matrix product NumPy's threads
keep spinning for a while, waiting for more work, and FAISS's OpenMP threads that run next share the cores
with them: on 2 cores, adding 1M vectors to an IVF-RaBitQ index took 19.7 s with a 100 x 4096 NumPy product
between the blocks, against 10.5 s without (and 10.6 s with NumPy's BLAS on one thread). A build does such
a product per block (the exact neighbours of its recall probes), so it runs with NumPy's BLAS on one thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def numpy_blas_on_one_thread() -> Iterator[None]:
    """Within the block, every BLAS the process has loaded but FAISS's own runs on one thread; as before after.
    Without threadpoolctl (or a BLAS it knows) nothing changes."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # (a dependency; a build without it is only slower)
        yield
        return
    try:
        libraries = [lib for lib in ThreadpoolController().lib_controllers
                     if lib.user_api == "blas" and "faiss" not in lib.filepath.lower()]
    except Exception:  # (an unknown library layout: leave the threads as they are)
        libraries = []
    before = [(lib, lib.num_threads) for lib in libraries]
    for lib, _ in before:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, threads in before:
            lib.set_num_threads(threads)
