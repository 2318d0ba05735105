"""Libraries this process cannot write: searched in SQLite's read-only modes, every change refused in one line.

As root the commands run through setpriv without CAP_DAC_OVERRIDE (see helpers), so that permission bits and
file owners bind them as they bind any user.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, draw_image, permission_bits_prefix, running_as_root

import bindsearch

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"
OTHER_USER = 4242


def bindsearch_cli(prefix: list[str] | None, *args: object) -> subprocess.CompletedProcess:
    done = subprocess.run([*(prefix or []), sys.executable, "-m", "bindsearch.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def make_library(tmp_path: Path, images: int = 3) -> tuple[Path, Path]:
    media, lib_path = tmp_path / "media", tmp_path / "lib"
    for i in range(images):
        draw_image(media / f"{i}.png", seed=i)
    with bindsearch.open_library(lib_path, TINY_IMAGEBIND, create=True) as lib:
        lib.index([media], workers=0)
        lib.tag([media / "0.png"], add=["kept"])
    return media, lib_path


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def chmod_tree(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o200 if writable else mode & ~0o222)


def assert_searchable_not_writable(prefix: list[str] | None, media: Path, lib_path: Path) -> None:
    found = bindsearch_cli(prefix, "query", "a photo", "--library", lib_path, "--json")
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)) == 3
    assert found.stderr.count("read-only") == 1  # said once
    info = bindsearch_cli(prefix, "info", "--library", lib_path, "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["read_only"]
    listed = bindsearch_cli(prefix, "tag", media / "0.png", "--library", lib_path, "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["tags"] == ["kept"]
    for refused in (["index", media], ["tag", media, "--add", "x"]):
        done = bindsearch_cli(prefix, *refused, "--library", lib_path)
        assert done.returncode == 2, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "is read-only" in errors[0], done.stderr


def test_a_library_made_read_only_with_chmod_is_searched_and_never_written(tmp_path):
    prefix = permission_bits_prefix()
    media, lib_path = make_library(tmp_path)
    for stale in (lib_path / "index").glob("*.faiss"):
        stale.unlink()  # the index must be rebuilt, in memory only
    assert not list(lib_path.glob("*-wal"))  # closed cleanly: no write-ahead log to read alongside
    before = snapshot(lib_path)
    chmod_tree(lib_path, writable=False)
    try:
        assert_searchable_not_writable(prefix, media, lib_path)
        assert snapshot(lib_path) == before
    finally:
        chmod_tree(lib_path, writable=True)


@pytest.mark.skipif(not running_as_root(), reason="giving files to another user needs root")
def test_another_users_library_in_use_is_searched_with_its_latest_commits(tmp_path):
    prefix = permission_bits_prefix()
    media, lib_path = make_library(tmp_path, images=2)
    owner = bindsearch.open_library(lib_path)  # kept open: its -wal and -shm files exist
    try:
        owner.counts()
        for path in [lib_path, *lib_path.rglob("*")]:
            os.chown(path, OTHER_USER, OTHER_USER)
        for folder in (lib_path, lib_path / "index"):
            folder.chmod(0o755)  # shared for reading, as a colleague's folder would be
        assert (lib_path / "library.sqlite-wal").exists()
        draw_image(media / "2.png", seed=2)
        owner.index([media], workers=0)  # a commit the reader must see, still in the log
        assert_searchable_not_writable(prefix, media, lib_path)
    finally:
        owner.close()
        for path in [lib_path, *lib_path.rglob("*")]:
            os.chown(path, 0, 0)


def test_the_api_refuses_changes_in_one_place(tmp_path):
    prefix = permission_bits_prefix()
    media, lib_path = make_library(tmp_path)
    chmod_tree(lib_path, writable=False)
    script = f"""
import bindsearch
lib = bindsearch.open_library({str(lib_path)!r})
assert lib.read_only == "its folder is not writable", lib.read_only
assert len(lib.search([bindsearch.QueryTerm.text("x")], k=5)) == 3
for change in (lambda: lib.index([{str(media)!r}]), lambda: lib.writer().__enter__(),
               lambda: lib.tag([{str(media)!r}], remove=["kept"])):
    try:
        change()
    except bindsearch.ReadOnlyLibraryError as exc:
        print(exc)
"""
    try:
        done = subprocess.run([*(prefix or []), sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=300)
    finally:
        chmod_tree(lib_path, writable=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(f"library {lib_path} is read-only" in line for line in lines), done.stdout
