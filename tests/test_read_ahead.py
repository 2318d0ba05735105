"""Reading ahead in a thread: the same items in the same order, errors where they happened, no read left running."""

from __future__ import annotations

import threading
import time

import pytest

from bindsearch.bulk_import.read_ahead import read_ahead


def test_items_come_in_order_and_the_next_is_read_meanwhile():
    taken: list[tuple[int, str]] = []

    def items():
        for i in range(5):
            taken.append((i, threading.current_thread().name))
            yield i

    out = []
    for item in read_ahead(items()):
        time.sleep(0.02)
        out.append(item)
        # While the caller holds item i, item i + 1 has been read (or is being read) elsewhere.
    assert out == list(range(5))
    assert all(name != threading.current_thread().name for _, name in taken)


def test_an_error_comes_out_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise OSError("disk gone")

    out = []
    with pytest.raises(OSError, match="disk gone"):
        for item in read_ahead(items()):
            out.append(item)
    assert out == [1, 2]


def test_stopping_early_waits_for_the_read_under_way():
    state = {"reading": False, "finished": 0}

    def items():
        for i in range(100):
            state["reading"] = True
            time.sleep(0.05)
            state["reading"] = False
            state["finished"] += 1
            yield i

    ahead = read_ahead(items())
    assert next(ahead) == 0
    ahead.close()  # (as a for loop left by an exception does)
    assert state["reading"] is False and state["finished"] <= 2
