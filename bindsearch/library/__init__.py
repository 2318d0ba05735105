"""Libraries: SQLite metadata, every vector stored once in a file per index, and one index per
modality (exact when small, approximate above a size), bound to a space.

The parts: ``records`` (what a library hands out), ``database`` (its SQLite engines), ``opening``
(open, migrate, create), ``item_store`` (reading items, windows and tags), ``vector_stores`` (the
full-precision vectors, ``vectors/<index>.f32``), ``slot_map`` (which row of those files holds an
id's vector), ``index_manager`` (the loaded index of each modality, kept current with other
processes' commits), ``index_builds`` (when to build an approximate index, where it lies on disk),
``writer`` (committing changes), and ``store`` (``LibraryStore``, which ties them together).
``bindsearch.api.Library`` adds the operations that take a library.
"""

from .records import FileError, IndexInfo, LibraryInfo, OptimizeReport, StoredItem, StoredWindow
from .store import LibraryStore
from .writer import LibraryWriter

__all__ = ["FileError", "IndexInfo", "LibraryInfo", "LibraryStore", "LibraryWriter", "OptimizeReport", "StoredItem",
           "StoredWindow"]
