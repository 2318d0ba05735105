"""Libraries: SQLite metadata plus one FAISS index per modality, bound to a space.

The parts: ``records`` (what a library hands out), ``database`` (its SQLite engines), ``opening``
(open, migrate, create), ``item_store`` (reading items, windows and tags), ``index_manager`` (the
FAISS index of each modality), ``writer`` (committing changes), and ``store`` (``LibraryStore``,
which ties them together). ``bindsearch.api.Library`` adds the operations that take a library.
"""

from .records import FileError, LibraryInfo, StoredItem, StoredWindow
from .store import LibraryStore
from .writer import LibraryWriter

__all__ = ["FileError", "LibraryInfo", "LibraryStore", "LibraryWriter", "StoredItem", "StoredWindow"]
