"""A library whose database pages are damaged behind a valid header: refused in one line, never built on."""

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import draw_image

import bindsearch
from bindsearch.errors import LibraryError


def make_library(tmp_path: Path, space_file: Path) -> tuple[Path, Path]:
    media, lib_path = tmp_path / "media", tmp_path / "lib"
    for i in range(4):
        draw_image(media / f"{i}.png", seed=i)
    with bindsearch.open_library(lib_path, space_file, create=True) as lib:
        lib.index([media], workers=0)
    return media, lib_path


def damage_table(db_path: Path, table: str) -> None:
    """Overwrite the root page of ``table`` with junk; the header and every other page stay as they were."""
    with sqlite3.connect(db_path) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    db.close()
    with open(db_path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xa5" * page_size)


def cli(*args: object) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def one_error(done: subprocess.CompletedProcess) -> str:
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def test_an_index_run_refuses_a_damaged_library(tmp_path, tiny_space_file):
    media, lib_path = make_library(tmp_path, tiny_space_file)
    damage_table(lib_path / "library.sqlite", "tags")  # a page a no-op run of untagged items never reads
    done = cli("index", media, "--library", lib_path)
    assert done.returncode == 2
    assert "is damaged" in one_error(done) and "restore" in one_error(done)
    with bindsearch.open_library(lib_path) as lib, pytest.raises(LibraryError, match="is damaged"):
        lib.index([media], workers=0)


def test_info_on_damaged_pages_says_so_in_one_line(tmp_path, tiny_space_file):
    _, lib_path = make_library(tmp_path, tiny_space_file)
    damage_table(lib_path / "library.sqlite", "tags")
    done = cli("info", "--library", lib_path)
    assert done.returncode == 2
    assert "is damaged" in one_error(done)


def test_a_sound_library_passes_the_check(tmp_path, tiny_space_file):
    media, lib_path = make_library(tmp_path, tiny_space_file)
    with bindsearch.open_library(lib_path) as lib:
        lib.check_damage()
        assert lib.index([media], workers=0).unchanged == 4
