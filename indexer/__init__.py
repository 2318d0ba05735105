"""The ingestion pipeline: scan folders, work out what changed, embed it, commit it."""

from .report import IndexObserver, IndexReport
from .run import index_paths

__all__ = ["IndexObserver", "IndexReport", "index_paths"]
