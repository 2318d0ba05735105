"""The library users hold: its store, plus the operations that take a library.

``Library`` is a ``LibraryStore`` (items, vectors, indexes, writer) with the
operations of the packages above the store as methods: indexing and watching
(``bindsearch.indexer``), searching and finding duplicates (``bindsearch.search``),
labelling (``bindsearch.classify``) and export. Each method only delegates, so
that the store itself depends on none of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .library import LibraryStore
from .modality import Modality

if TYPE_CHECKING:
    from .bulk_import import ImportReport
    from .export import ExportReport
    from .filters import Filters
    from .indexer import IndexReport
    from .search import Hit, QueryTerm
    from .search.duplicates import DuplicateGroup


class Library(LibraryStore):
    """A searchable collection of embedded media; open it with ``Library.open`` or ``bindsearch.open_library``."""

    def index(self, paths: Sequence[str | os.PathLike[str]], **options: Any) -> IndexReport:
        """Index files and folders; see ``bindsearch.indexer.index_paths`` for the options."""
        from .indexer import index_paths

        return index_paths(self, paths, **options)

    def watch(self, paths: Sequence[str | os.PathLike[str]], **options: Any) -> None:
        """Index files and folders, then keep them up to date; see ``bindsearch.indexer.watch.watch_paths``."""
        from .indexer.watch import watch_paths

        watch_paths(self, paths, **options)

    def search(
        self,
        terms: Sequence[QueryTerm] | np.ndarray,
        targets: Iterable[Modality | str] | None = None,
        k: int = 10,
        *,
        offset: int = 0,
        windows: bool = False,
        filters: Filters | None = None,
        dedup: float | None = None,
        exact: bool = False,
    ) -> list[Hit]:
        """Search with query terms (or a ready vector); see ``bindsearch.search.search``. ``offset`` skips that
        many of the best results (the next page of a list of ``k``); ranks stay those of the whole list."""
        from .errors import UsageError
        from .search import search

        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise UsageError(f"offset must be a whole number, at least 0 (got {offset!r})")
        if offset and k <= 0:
            raise UsageError(f"k must be a positive number of results (got {k})")
        hits = search(self, terms, targets=targets, k=k + offset, windows=windows, filters=filters, dedup=dedup,
                      exact=exact)
        return hits[offset:]

    def classify(self, files: Sequence[str | os.PathLike[str]], labels: Sequence[str], **options: Any) -> list:
        """Zero-shot labels of files in this library's space; see ``bindsearch.classify.classify``."""
        from .classify import classify

        return classify(files, labels, space=self.space, **options)

    def export(self, file: str | os.PathLike[str], **options: Any) -> ExportReport:
        """Write vectors and metadata to a .npz or .parquet file; see ``bindsearch.export.export_library``."""
        from .export import export_library

        return export_library(self, file, **options)

    def import_vectors(self, file: str | os.PathLike[str], **options: Any) -> ImportReport:
        """Add vectors computed elsewhere from a .npz or .parquet file; see ``bindsearch.bulk_import.import_file``."""
        from .bulk_import import import_file

        return import_file(self, file, **options)

    def duplicates(self, threshold: float = 0.95,
                   modalities: Sequence[Modality | str] | None = None) -> list[DuplicateGroup]:
        """Groups of near-identical items (cosine >= ``threshold``), the one to keep first in each;
        see ``bindsearch.search.duplicates``."""
        from .search.duplicates import find_duplicates

        with self._engine.connect() as conn:
            return find_duplicates(self, conn, threshold, modalities)
