"""The ingestion pipeline: scan folders, work out what changed, embed it, commit it."""

from .report import IndexObserver, IndexReport
from .run import check_arguments, index_paths

__all__ = ["IndexObserver", "IndexReport", "check_arguments", "index_paths"]
