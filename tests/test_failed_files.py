"""A file that failed and has not changed costs a stat: reported as failed again, read again only when asked."""

import os
import sqlite3

from bindsearch.indexer import IndexObserver
from helpers import REPO, draw_image, permission_bits_prefix, run_index_cli

import bindsearch

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"


class CountsReads(IndexObserver):
    def __init__(self) -> None:
        self.to_read: list[int] = []

    def started(self, total: int, by_modality: dict[str, int] | None = None) -> None:
        self.to_read.append(total)


def reasons(report: dict) -> list[str]:
    return [e["reason"] for e in report["errors"]]


def test_an_unchanged_failed_file_is_not_read_again_but_still_reported(library, media):
    (media / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    first = library.index([media])
    assert first.failed == 1 and first.still_failed == 0
    reason = first.errors[0].reason
    observer = CountsReads()
    again = library.index([media], observer=observer)
    assert observer.to_read == [0]
    assert (again.failed, again.still_failed, again.unchanged) == (1, 1, 6)
    assert [(e.path, e.reason) for e in again.errors] == [(str(media / "bad.png"), reason)]
    assert [f.reason for f in library.info().failed] == [reason]


def test_retry_failed_reads_them_again(tmp_path, media):
    (media / "bad.png").write_bytes(b"not a png at all")
    lib_path = tmp_path / "lib"
    first, done = run_index_cli([], media, "--library", lib_path, "--space", TINY_IMAGEBIND, "--workers", "0")
    assert done.returncode == 3 and first["failed"] == 1
    with sqlite3.connect(lib_path / "library.sqlite") as db:  # a reason only a read can replace
        db.execute("UPDATE items SET error = 'stored reason' WHERE status = 'failed'")
    kept, done = run_index_cli([], media, "--library", lib_path, "--workers", "0")
    assert done.returncode == 3  # still a failure: the exit status says so
    assert (kept["failed"], kept["still_failed"]) == (1, 1)
    assert [e["reason"] for e in kept["errors"]] == ["stored reason"]
    retried, done = run_index_cli([], media, "--library", lib_path, "--workers", "0", "--retry-failed")
    assert done.returncode == 3
    assert (retried["failed"], retried["still_failed"]) == (1, 0)
    assert [e["reason"] for e in retried["errors"]] == reasons(first)


def test_a_file_that_failed_for_want_of_permission_is_read_once_it_may_be(tmp_path):
    prefix = permission_bits_prefix() or []
    folder = tmp_path / "media"
    draw_image(folder / "locked.png", seed=1)
    draw_image(folder / "open.png", seed=2)
    lib_path = tmp_path / "lib"
    os.chmod(folder / "locked.png", 0)
    try:
        first, done = run_index_cli(prefix, folder, "--library", lib_path, "--space", TINY_IMAGEBIND,
                                    "--workers", "0")
    finally:
        os.chmod(folder / "locked.png", 0o644)  # a chmod changes neither size nor mtime
    assert done.returncode == 3 and reasons(first) == ["permission denied"]
    again, done = run_index_cli(prefix, folder, "--library", lib_path, "--workers", "0")
    assert done.returncode == 0, done.stderr
    assert (again["added"], again["failed"]) == (1, 0)
    with bindsearch.open_library(lib_path) as lib:
        assert lib.info().failed == []
