"""Vector index engines behind one interface: exact (flat) for small sets, IVF-RaBitQ with an exact
re-rank above, chosen by size (``choose``), tuned in ``defaults``; and ``MilvusIndex``, whose vectors live in
a Milvus collection (Milvus Lite or a server).

The names below load on first use: the engines import FAISS, which a process that only reads a
library's records (a no-op index run, ``info`` of counts) never needs, while ``idsets`` and
``defaults`` need none of it; the Milvus engine imports pymilvus only when an index is opened.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "ApproximateIndex": "approximate",
    "Fetch": "base",
    "IndexStats": "base",
    "VectorIndex": "base",
    "build_index": "choose",
    "engine_for": "choose",
    "load_index": "choose",
    "should_rebuild": "choose",
    "IvfParams": "defaults",
    "ivf_params": "defaults",
    "FlatIndex": "flat",
    "search_ids": "flat",
    "MilvusIndex": "milvus",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
