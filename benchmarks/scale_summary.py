"""One row per system and size, with the columns of the README's scale table, from the measurement rows."""

from __future__ import annotations

# Table row -> (system whose rows hold its import and disk figures, the import figure that applies to it,
# system whose rows hold its queries). Both LanceDB rows search one table, but brute force needs no index:
# its import is the ingest alone. FAISS flat is built in memory, with nothing on disk.
TABLE = {
    "bindsearch": ("bindsearch", "vectors_per_s", "bindsearch"),
    "faiss_flat": (None, None, "faiss_flat"),
    "lancedb_ivf_pq": ("lancedb", "vectors_per_s", "lancedb_ivf_pq"),
    "lancedb_brute_force": ("lancedb", "ingest_vectors_per_s", "lancedb_brute_force"),
    "chroma_hnsw": ("chroma", "vectors_per_s", "chroma_hnsw"),
}
IMPORT_MEASURES = ("import", "fill_by_writer")  # the writer fills a library where bulk import is missing
QUERY_COLUMNS = ("rss_after_warmup_mib", "peak_rss_mib", "p50_ms", "p95_ms", "recall_at_10", "first_query_s")


def _row(rows: list[dict], system: str | None, measure: str) -> dict | None:
    found = [r for r in rows if system and r.get("system") == system and r.get("measure") == measure
             and "skipped" not in r]
    return found[0] if found else None


def summaries(rows: list[dict]) -> list[dict]:
    """The table's rows (systems with no figure at all left out): import vectors/s (and how), bytes per
    item on disk, the query process's RSS, p50, p95, recall@10 and first query, each None where not measured."""
    out = []
    for name, (store, rate, searched) in TABLE.items():
        summary: dict = {"system": name, "measure": "summary"}
        imported = next((r for m in IMPORT_MEASURES if (r := _row(rows, store, m))), None)
        summary["import_vectors_per_s"] = imported.get(rate) if imported else None
        summary["imported_by"] = imported["measure"] if imported else None
        if imported and imported.get("index_build_s") is not None:  # (bindsearch's import builds its index too)
            summary["import_index_build_s"] = imported["index_build_s"]
        disk = _row(rows, store, "disk")
        summary["bytes_per_item"] = disk.get("bytes_per_item") if disk else None
        query = _row(rows, searched, "query")
        for column in QUERY_COLUMNS:
            summary[column] = query.get(column) if query else None
        summary["setting"] = query.get("setting") if query else None
        rebuild = _row(rows, searched, "rebuild")
        if rebuild:
            summary["rebuild_s"] = rebuild.get("rebuild_s")
            summary["rebuild_peak_rss_mib"] = rebuild.get("peak_rss_mib")
            summary["rebuild_peak_to_index_process"] = rebuild.get("peak_to_index_process")
        bare = _row(rows, searched, "bare_import")
        if bare:
            summary["import_bindsearch_s"] = bare.get("import_bindsearch_s")
        if imported or disk or query:
            out.append(summary)
    return out
