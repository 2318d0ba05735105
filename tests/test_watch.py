"""bindsearch watch: a real watcher process keeps a library up to date as files come, change, move and go."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bindsearch.indexer.watch import index_roots
from helpers import TINY_SPACE_FILE, draw_image

import bindsearch
from bindsearch.errors import LibraryLockedError
from bindsearch.library import StoredItem
from bindsearch.library.lock import WriterLock
from bindsearch.library.records import LOCK_FILE

# A loaded machine embeds slowly: bounds, not expectations.
_CHANGE_S = 120


def test_index_roots_cover_what_changed_from_what_is_still_there():
    there = {"/w", "/w/a", "/w/a/new.png", "/w/b", "/v"}
    changed = ["/w/a/new.png", "/w/a/gone.png", "/w/b/sub/deep/gone.png", "/w/.cache/x.png", "/w/a/.x.png.tmp",
               "/w/lib/library.sqlite", "/elsewhere/x.png", "/v/w.png"]
    assert index_roots(changed, ["/w", "/v"], "/w/lib", exists=there.__contains__) == ["/v", "/w/a", "/w/b"]
    # A folder that changed covers the files in it.
    assert index_roots(["/w/a", "/w/a/new.png"], ["/w"], "/lib", exists=there.__contains__) == ["/w/a"]
    assert index_roots(["/w/lib/index/x.faiss"], ["/w"], "/w/lib", exists=there.__contains__) == []


def _items(library: Path, media: Path) -> dict[str, StoredItem]:
    with bindsearch.open_library(library) as lib:
        return {os.path.relpath(i.path, media): i for i in lib.items_under([str(media)])}


def _until(what: str, check: Callable[[], bool], seconds: float, watcher: subprocess.Popen) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        if watcher.poll() is not None:
            raise AssertionError(f"the watcher ended (exit {watcher.returncode}) before {what}:\n"
                                 f"{watcher.stderr.read()}")
        time.sleep(0.2)
    watcher.kill()
    raise AssertionError(f"not seen within {seconds} s: {what}\n{watcher.communicate()[1]}")



@contextlib.contextmanager
def _lock_when_free(library, timeout: float = 120.0):
    """The library's writer lock, taken once the watcher's run that saw the last change has let it go."""
    deadline = time.monotonic() + timeout
    lock = WriterLock(str(library / LOCK_FILE), str(library))
    while True:
        try:
            lock.acquire()
            break
        except LibraryLockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        yield
    finally:
        lock.release()


def _start(tmp_path: Path, media: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bindsearch.cli", "watch", str(media), "--library", str(tmp_path / "lib"),
         "--space", str(TINY_SPACE_FILE), "--debounce", "0.3", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_watch_follows_new_changed_moved_deleted_and_bad_files_and_stops_on_sigterm(tmp_path):
    media, library = tmp_path / "media", tmp_path / "lib"
    draw_image(media / "a.png", seed=1)
    draw_image(media / "sub" / "b.png", seed=2)
    watcher = _start(tmp_path, media)
    try:
        rescan = json.loads(watcher.stdout.readline())  # the rescan at start, through the index code
        assert rescan["rescan"] and rescan["report"]["added"] == 2, rescan
        assert set(_items(library, media)) == {"a.png", "sub/b.png"}
        # Between runs the writer lock is free: another process writes to the library.
        with bindsearch.open_library(library) as lib:
            lib.tag([media / "a.png"], add=["first"])
            assert [r.path for r in lib.remove([media / "sub" / "b.png"])] == [str(media / "sub" / "b.png")]
            draw_image(media / "sub" / "b.png", seed=2)  # and back it comes, as a new file

        draw_image(media / "new.png", seed=3)
        (media / "bad.jpg").write_text("not a picture\n")
        _until("a new file and a bad one", lambda: {"new.png", "sub/b.png", "bad.jpg"} <= set(_items(library, media)),
               _CHANGE_S, watcher)
        items = _items(library, media)
        assert items["new.png"].status == "ok" and items["bad.jpg"].status == "failed"

        before = items["new.png"]
        draw_image(media / "new.png", seed=4, size=(120, 90))
        _until("a changed file", lambda: _items(library, media)["new.png"].content_hash != before.content_hash,
               _CHANGE_S, watcher)

        a = items["a.png"]
        (media / "moved").mkdir()
        os.rename(media / "a.png", media / "moved" / "a.png")
        _until("a moved file", lambda: "a.png" not in _items(library, media)
               and "moved/a.png" in _items(library, media), _CHANGE_S, watcher)
        assert _items(library, media)["moved/a.png"].id == a.id  # its vector and tags kept
        with bindsearch.open_library(library) as lib:
            assert lib.tags_of([a.id]) == {a.id: ("first",)}

        os.unlink(media / "sub" / "b.png")
        (media / "bad.jpg").unlink()
        _until("deleted files", lambda: set(_items(library, media)) == {"new.png", "moved/a.png"},
               _CHANGE_S, watcher)

        # Another writer holds the library: the run waits for it, then happens.
        with _lock_when_free(library):
            draw_image(media / "late.png", seed=5)
            time.sleep(3)
            assert "late.png" not in _items(library, media)
        _until("a file made while the library was locked", lambda: "late.png" in _items(library, media),
               _CHANGE_S, watcher)
    finally:
        watcher.send_signal(signal.SIGTERM)
        _out, err = watcher.communicate(timeout=300)
    assert watcher.returncode == 0, err
    assert err.strip().splitlines()[-1] == "stopped watching: everything indexed so far is saved"
    assert "Traceback" not in err
    with bindsearch.open_library(library) as lib:  # the library opens and its index is whole
        assert lib.counts() == {bindsearch.Modality.IMAGE: 3}
    assert "is being written by another bindsearch process" in err and "trying again" in err


def test_ctrl_c_stops_a_watch_with_status_130(tmp_path):
    media = tmp_path / "media"
    draw_image(media / "a.png", seed=1)
    watcher = _start(tmp_path, media)
    try:
        assert json.loads(watcher.stdout.readline())["report"]["added"] == 1
    finally:
        watcher.send_signal(signal.SIGINT)
        _, err = watcher.communicate(timeout=300)
    assert watcher.returncode == 130, err
    assert err.strip().splitlines()[-1] == "stopped watching: everything indexed so far is saved"


def test_watch_of_a_missing_path_is_a_one_line_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", "watch", str(tmp_path / "nothing"),
                           "--library", str(tmp_path / "lib")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == f"error: no such file or folder: {tmp_path / 'nothing'}"
