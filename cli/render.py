"""Tables and JSON for the API's dataclasses. JSON is ``asdict`` of the same objects the API returns."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from bindsearch.indexer import IndexReport
from rich.markup import escape
from rich.table import Table

from bindsearch.classify import Classification
from bindsearch.jsonable import to_jsonable
from bindsearch.library import IndexInfo, LibraryInfo
from bindsearch.library.tags import TaggedItem
from bindsearch.paths import display_path
from bindsearch.search import Hit
from bindsearch.windows import WindowSettings, format_time

from .console import out, stdout_is_terminal


def print_json(obj: Any) -> None:
    print(json.dumps(to_jsonable(obj), ensure_ascii=False, indent=None, allow_nan=False))


def print_hits(hits: list[Hit]) -> None:
    """Rank, raw and calibrated score, modality, time (for windows), path and tags: a table, or tab-separated."""
    timed = any(h.start is not None for h in hits)
    tagged = any(h.tags for h in hits)
    if not stdout_is_terminal():
        columns = ["rank", "score", "calibrated", "modality", *(["time"] if timed else []), "path"]
        print("\t".join(columns + (["tags"] if tagged else [])))
        for h in hits:
            time = f"\t{_span(h)}" if timed else ""
            tags = f"\t{','.join(h.tags)}" if tagged else ""
            print(f"{h.rank}\t{h.score:.4f}\t{h.calibrated:.2f}\t{h.modality.value}{time}\t{display_path(h.path)}{tags}")
        return
    table = Table(show_edge=False, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("calibrated", justify="right")
    table.add_column("modality")
    if timed:
        table.add_column("time", no_wrap=True)
    table.add_column("path", overflow="fold")
    if tagged:
        table.add_column("tags")
    for h in hits:
        cells = [str(h.rank), f"{h.score:.4f}", f"{h.calibrated:.2f}", h.modality.value]
        if timed:
            cells.append(_span(h))
        cells.append(escape(display_path(h.path)))
        if tagged:
            cells.append(escape(", ".join(h.tags)))
        table.add_row(*cells)
    out.print(table)


def print_paths(hits: list[Hit], separator: bytes = b"\n") -> None:
    """Each file's path once, best first, each followed by ``separator`` (for piping into other tools).

    The path's bytes are written as the file system holds them (a name that is not UTF-8 comes back
    as its own bytes), so that another program opens the very file; ``b"\0"`` separates names that
    hold newlines.
    """
    seen: set[str] = set()
    sys.stdout.flush()
    stream = sys.stdout.buffer
    for h in hits:
        if h.path not in seen:
            seen.add(h.path)
            stream.write(os.fsencode(h.path) + separator)
    stream.flush()


def print_classifications(results: list[Classification], top: int | None = None) -> None:
    """Per file its labels, most probable first, with their probabilities (the first ``top`` of them)."""
    if not stdout_is_terminal():
        print("file\tlabel\tprobability")  # further label and probability pairs follow on the same row
        for r in results:
            if r.error is None:
                labels = "\t".join(f"{s.label}\t{s.probability:.4f}" for s in r.labels[:top])
                print(f"{display_path(r.path)}\t{labels}")
        return
    table = Table(show_edge=False, header_style="bold")
    table.add_column("file", overflow="fold")
    table.add_column("label")
    table.add_column("probability", justify="right")
    for r in results:
        if r.error is not None:
            continue
        for n, s in enumerate(r.labels[:top]):
            table.add_row(escape(display_path(r.path)) if n == 0 else "", escape(s.label), f"{s.probability:.4f}")
    out.print(table)


def print_tagged(items: list[TaggedItem]) -> None:
    """Each item's path, modality and tags."""
    if not stdout_is_terminal():
        print("path\tmodality\ttags")
    for item in items:
        tags = ", ".join(item.tags) if item.tags else "(no tags)"
        if stdout_is_terminal():
            out.print(f"{escape(display_path(item.path))} [dim]{item.modality}[/]: {escape(tags)}")
        else:
            print(f"{display_path(item.path)}\t{item.modality}\t{','.join(item.tags)}")


def _span(hit: Hit) -> str:
    """A window's times as 1:02:03-1:02:09; a dash for a whole file."""
    if hit.start is None or hit.end is None:
        return "-"
    return f"{format_time(hit.start)}-{format_time(hit.end)}"


def index_summary(report: IndexReport) -> str:
    parts = [
        f"added {report.added}",
        f"updated {report.updated}",
        f"unchanged {report.unchanged}",
        f"moved {report.moved}",
        f"removed {report.removed}",
        f"failed {report.failed}" + (f" ({report.still_failed} unchanged since they failed, not read again)"
                                     if report.still_failed else ""),
    ]
    if report.skipped:
        parts.append(f"skipped {report.skipped} ({_skipped_why(report)})")
    if report.left_to_others:
        parts.append(f"left to other runs {report.left_to_others} (indexed by another index run at the same time)")
    summary = ", ".join(parts) + f" in {report.seconds:.1f} s"
    if report.ray_startup_seconds is not None:
        actors = (f", its actors' {report.ray_actors_seconds:.1f} s" if report.ray_actors_seconds is not None
                  else "")
        summary += f" (Ray's start {report.ray_startup_seconds:.1f} s{actors} of it)"
    if report.rates:
        precision = f" in {report.precision}" if report.precision else ""
        summary += f"\nembedded{precision}: " + ", ".join(f"{m} {_rate(r)}" for m, r in report.rates.items())
    if report.windows:
        summary += "\ntime windows " + ", ".join(f"{m} {n}" for m, n in report.windows.items())
    if report.window_settings_changed:
        summary += "\nnew window settings: audio and video were read again"
    return summary


def _rate(files_per_second: float | None) -> str:
    # None: too few files, or too short a time, after the first batch to tell a rate.
    return "n/a" if files_per_second is None else f"{files_per_second:.1f} files/s"


def _skipped_why(report: IndexReport) -> str:
    """Why files were skipped: the space cannot embed their modality, or they hold nothing of it."""
    unsupported, empty = report.unsupported, report.skipped - report.unsupported
    if not empty:
        return "nothing this space can embed"
    if not unsupported:
        return "nothing to embed in them, like a video without a soundtrack"
    return f"{unsupported} nothing this space can embed, {empty} nothing to embed in them"


def print_info(info: LibraryInfo) -> None:
    table = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("library", display_path(info.path))
    if info.metadata is not None:
        table.add_row("metadata", info.metadata)
        table.add_row("vectors", display_path(info.vectors or ""))
    table.add_row("space", f"{info.space} (fingerprint {info.fingerprint}, {info.dim} dims)")
    total = sum(info.counts.values())
    per = ", ".join(f"{m} {n}" for m, n in info.counts.items()) or "none"
    table.add_row("items", f"{total} ({per})")
    added = {m: kind for m, kind in info.modalities.items() if m != kind}
    if added:  # modalities a bound space adds, and what reads their files
        table.add_row("bound", ", ".join(f"{m} ({kind})" for m, kind in added.items()))
    settings = WindowSettings.from_dict(info.window_settings) if info.window_settings else WindowSettings()
    windows = ", ".join(f"{m} {n}" for m, n in info.windows.items()) or "none"
    table.add_row("time windows", f"{windows} ({settings.describe()})")
    if info.precisions:
        table.add_row("precision", _precisions(info.precisions))
    if info.tags:
        table.add_row("tags", ", ".join(f"{t} {n}" for t, n in info.tags.items()))
    table.add_row("failed", str(len(info.failed)))
    table.add_row("size", human_bytes(info.size_bytes))
    table.add_row("schema", str(info.schema_version))
    if info.read_only:
        table.add_row("access", f"read-only ({info.read_only}): searches only")
    out.print(table)
    if info.indexes:
        print_indexes(info.indexes)
    for f in info.failed:
        out.print(f"  [red]failed[/] {escape(display_path(f.path))}: {escape(f.reason)}")


def _precisions(precisions: dict[str, list[str]]) -> str:
    """"bf16" when one precision embedded every modality, else each modality's: "image bf16, text fp32+bf16"."""
    kinds = {"+".join(p) for p in precisions.values()}
    if len(kinds) == 1:
        return kinds.pop()
    return ", ".join(f"{m} {'+'.join(p)}" for m, p in precisions.items())


def print_indexes(indexes: list[IndexInfo]) -> None:
    """One row per index: its engine, how many vectors it holds, what changed since it was built (searched
    exactly beside it, or left out), when that was, the recall@10 against exact search it was measured to
    reach, and what its vectors and its index file take on disk."""
    table = Table(show_edge=False, box=None, pad_edge=False, header_style="bold")
    for column in ("index", "kind", "vectors", "since build", "built", "recall@10", "on disk"):
        table.add_column(column, justify="left" if column in ("index", "kind", "since build", "built") else "right",
                         no_wrap=True)
    for i in indexes:
        s = i.stats
        since = f"+{s.tail} -{s.removed}" if s.built_at is not None else ""
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.built_at)) if s.built_at is not None else ""
        recall = "" if s.expected_recall is None else f"{s.expected_recall:.3f}"
        table.add_row(i.name, s.kind, f"{s.size:,}", since, built, recall,
                      human_bytes(i.file_bytes + i.vector_bytes))
    out.print()
    out.print(table)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
