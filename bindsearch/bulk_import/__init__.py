"""Bulk import of vectors computed elsewhere (another machine, a GPU cluster, another library's export)."""

from .file_space import file_space, space_for_new_library
from .importer import CHUNK_ROWS, check_space, import_file, read_header
from .report import BadRow, ImportReport
from .source import FileHeader, import_format

__all__ = ["CHUNK_ROWS", "BadRow", "FileHeader", "ImportReport", "check_space", "file_space", "import_file",
           "import_format", "read_header", "space_for_new_library"]
