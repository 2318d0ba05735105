"""Vector index engines behind one interface: exact (flat) for small sets, IVF-RaBitQ with an exact
re-rank above, chosen by size (``choose``), tuned in ``defaults``."""

from .approximate import ApproximateIndex
from .base import Fetch, IndexStats, VectorIndex
from .choose import build_index, engine_for, load_index, should_rebuild
from .defaults import IvfParams, ivf_params
from .flat import FlatIndex, search_ids

__all__ = ["ApproximateIndex", "Fetch", "FlatIndex", "IndexStats", "IvfParams", "VectorIndex", "build_index",
           "engine_for", "ivf_params", "load_index", "search_ids", "should_rebuild"]
