"""Libraries: SQLite metadata plus one FAISS index per modality, bound to a space."""

from .library import FileError, Library, LibraryInfo, LibraryWriter, StoredItem

__all__ = ["FileError", "Library", "LibraryInfo", "LibraryWriter", "StoredItem"]
