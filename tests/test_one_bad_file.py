"""One bad file costs one file: odd dates, folders too deep for the system, files that kill their reader.

Each file here breaks something below bindsearch (SQLite's integers, the kernel's PATH_MAX, the
reading process itself); the run must record that file, with a named reason, and index the rest.
"""

from __future__ import annotations

import os
from pathlib import Path

from helpers import REPO, draw_image

import bindsearch

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"
YEAR_2300_NS = 10_413_792_000 * 10**9  # 2300-01-01 UTC, past the last nanosecond a signed 64-bit integer holds


def index(folder: Path, lib: Path, **options: object) -> bindsearch.IndexReport:
    with bindsearch.open_library(lib, TINY_IMAGEBIND, create=True) as library:
        return library.index([folder], batch_size=4, **options)


def test_a_file_dated_after_2262_fails_alone_and_the_run_finishes(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    for i in range(6):
        draw_image(folder / f"p{i}.png", seed=i)
    os.utime(folder / "p2.png", ns=(YEAR_2300_NS, YEAR_2300_NS))  # as `touch -d 2300-01-01` does
    report = index(folder, tmp_path / "lib", workers=0)
    assert [(Path(e.path).name, e.reason) for e in report.errors] == [
        ("p2.png", "its modification time lies after 2262, which cannot be recorded; give it a real date (touch FILE)")
    ]
    assert (report.added, report.failed) == (5, 1)
    # The next run records it again (it is still dated so) and finishes too; nothing else is redone.
    again = index(folder, tmp_path / "lib", workers=0)
    assert (again.unchanged, again.failed, again.embedded) == (5, 1, 0), again


def make_deeper_than_path_max(top: Path) -> str:
    """Folders nested beyond PATH_MAX (made through directory descriptors), an image at the bottom;
    returns the path of the first folder whose path is too long."""
    limit = os.pathconf(str(top), "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096
    fd = os.open(top, os.O_RDONLY)
    path, first_too_long = str(top), None
    try:
        while len(path) <= limit + 300:
            name = f"d{len(path)}".ljust(200, "x")
            os.mkdir(name, dir_fd=fd)
            deeper = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd, path = deeper, f"{path}/{name}"
            if first_too_long is None and len(path) >= limit:
                first_too_long = path
        image = os.open("deep.png", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
        os.write(image, draw_image(top.parent / "shallow.png", seed=9).read_bytes())
        os.close(image)
    finally:
        os.close(fd)
    assert first_too_long is not None
    return first_too_long


def test_a_folder_deeper_than_path_max_is_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    draw_image(folder / "top.png", seed=1)
    too_long = make_deeper_than_path_max(folder)
    report = index(folder, tmp_path / "lib", workers=0)
    assert report.added == 1, report
    assert [(e.path, e.reason) for e in report.errors] == [
        (too_long, "folder not indexed: its path is longer than the system allows (PATH_MAX)")
    ]
