"""Reading the next chunk of a file while the last one is written."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_END = object()


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """The items of ``items`` in order, the next one taken in a thread while the caller works on this one.

    Decompressing a file and writing a library both spend most of their time outside the GIL (zlib, Arrow,
    pwrite, fsync, SQLite), so the two overlap on two cores. Only one item is read ahead; ``items`` is only
    ever advanced by one thread at a time, and an error it raises comes out here, in order. Closing this
    iterator (or an exception in the caller) waits for a read under way, so that the source can be closed
    after.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bindsearch-read-ahead") as pool:
        pending = pool.submit(next, items, _END)
        try:
            while True:
                item = pending.result()
                if item is _END:
                    return
                pending = pool.submit(next, items, _END)
                yield item  # type: ignore[misc]
        finally:
            pending.cancel()  # (a read under way is waited for as the pool shuts down)
