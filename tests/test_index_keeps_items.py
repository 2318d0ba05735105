"""An index run deletes only items whose file is gone: a forced modality adds, and tags stay with their files."""

import sqlite3
from pathlib import Path

import pytest
from helpers import REPO, draw_image, run_index_cli

import bindsearch
from bindsearch.modality import Modality

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"


@pytest.fixture(scope="module")
def space() -> bindsearch.Space:
    return bindsearch.load_space(TINY_IMAGEBIND)


def tags_by_item(lib: bindsearch.Library) -> dict[tuple[str, str], list[str]]:
    with sqlite3.connect(lib.path / "library.sqlite") as db:
        rows = db.execute("SELECT i.path, i.modality, t.tag FROM items i JOIN tags t ON t.item_id = i.id "
                          "ORDER BY t.tag").fetchall()
    out: dict[tuple[str, str], list[str]] = {}
    for path, modality, tag in rows:
        out.setdefault((Path(bytes(path).decode()).name, modality), []).append(tag)
    return out


def test_a_forced_modality_adds_items_and_deletes_none(tmp_path, space):
    photos = tmp_path / "photos"
    for i in range(5):
        draw_image(photos / f"{i}.png", seed=i)
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        lib.index([photos], workers=0)
        lib.tag([photos], add=["trip"])
        forced = lib.index([photos], modality="thermal", workers=0)
        assert (forced.added, forced.removed) == (5, 0)
        assert lib.counts() == {Modality.IMAGE: 5, Modality.THERMAL: 5}
        assert set(tags_by_item(lib)) == {(f"{i}.png", "image") for i in range(5)}
        # A plain run again leaves the thermal items alone too: their files are still there.
        plain = lib.index([photos], workers=0)
        assert (plain.unchanged, plain.removed) == (5, 0)
        assert lib.counts() == {Modality.IMAGE: 5, Modality.THERMAL: 5}
        assert len(lib.search(lib.stored_item_vector(str(photos / "0.png"))[1], targets=["thermal"], k=10)) == 5
        # A file that is truly gone takes every item of it along, whatever the run's modality.
        (photos / "0.png").unlink()
        gone = lib.index([photos], modality="thermal", workers=0)
        assert (gone.unchanged, gone.removed) == (4, 2)
        assert lib.counts() == {Modality.IMAGE: 4, Modality.THERMAL: 4}
        assert ("0.png", "image") not in tags_by_item(lib)


def test_a_forced_run_of_the_cli_reports_nothing_removed(tmp_path):
    photos = tmp_path / "photos"
    for i in range(3):
        draw_image(photos / f"{i}.png", seed=i)
    lib_path = tmp_path / "lib"
    first, done = run_index_cli([], photos, "--library", lib_path, "--space", TINY_IMAGEBIND, "--workers", "0")
    assert done.returncode == 0 and first["added"] == 3
    forced, done = run_index_cli([], photos, "--library", lib_path, "--modality", "thermal", "--workers", "0")
    assert done.returncode == 0, done.stderr
    assert (forced["added"], forced["removed"]) == (3, 0)


def test_content_moved_over_another_file_keeps_the_tags_of_both(tmp_path, space):
    media = tmp_path / "media"
    draw_image(media / "a.png", seed=1)
    draw_image(media / "b.png", seed=2)
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        lib.index([media], workers=0)
        lib.tag([media / "a.png"], add=["cat"])
        lib.tag([media / "b.png"], add=["best"])
        (media / "a.png").replace(media / "b.png")  # a's content now lives at b's path
        report = lib.index([media], workers=0)
        assert (report.moved, report.removed) == (1, 0)
        assert tags_by_item(lib) == {("b.png", "image"): ["best", "cat"]}
        assert lib.counts() == {Modality.IMAGE: 1}
