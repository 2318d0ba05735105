"""The commands around a library: remove, export, duplicates (API and CLI, on real libraries)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import draw_image

import bindsearch
from bindsearch import QueryTerm
from bindsearch.errors import LibraryLockedError, UsageError
from bindsearch.library.lock import WriterLock
from bindsearch.library.records import LOCK_FILE
from bindsearch.modality import Modality
from bindsearch.search.duplicates import group_by_keeper, keep_rank


def cli(*args: object, library: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", *map(str, args), "--library", str(library)],
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    return done


# -- remove ----------------------------------------------------------------------------------


def test_remove_drops_the_items_under_a_folder_and_leaves_the_files(library, media):
    assert library.index([media], workers=0).added == 6
    library.tag([media / "sub" / "c.png"], add=["kept?"])
    removed = library.remove([media / "sub", media / "notes" / "dog.txt"])
    assert sorted((Path(r.path).name, r.modality) for r in removed) == [
        ("c.png", "image"), ("d.jpg", "image"), ("dog.txt", "text")]
    assert (media / "sub" / "c.png").exists() and (media / "notes" / "dog.txt").exists()
    left = {Path(i.path).name for i in library.items_under([str(media)])}
    assert left == {"a.png", "b.jpg", "car.md"}
    assert library.vector_index(Modality.IMAGE).size == 2 and library.info().tags == {}
    hits = library.search([QueryTerm.file("image", media / "sub" / "c.png")], targets=["image"], k=10)
    assert {Path(h.path).name for h in hits} == {"a.png", "b.jpg"}
    # Another process sees the same: the index files on disk were saved after the commit.
    with bindsearch.open_library(library.path) as again:
        assert again.vector_index(Modality.IMAGE).size == 2 and again.counts()[Modality.TEXT] == 1
    # And the next index run of the folder adds them again.
    assert library.index([media], workers=0).added == 3


def test_remove_of_a_path_not_in_the_library_removes_nothing(library, media, tmp_path):
    library.index([media], workers=0)
    with pytest.raises(UsageError, match=r"not in the library: .*elsewhere"):
        library.remove([media / "a.png", tmp_path / "elsewhere"])
    assert len(library.items_under([str(media)])) == 6
    with WriterLock(str(library.path / LOCK_FILE), str(library.path)):
        with pytest.raises(LibraryLockedError):
            library.remove([media / "a.png"])
    assert len(library.items_under([str(media)])) == 6


def test_remove_on_the_command_line(library, media, tmp_path):
    library.index([media], workers=0)
    done = cli("remove", media / "sub", "--json", library=library.path)
    assert done.returncode == 0, done.stderr
    assert sorted(Path(r["path"]).name for r in json.loads(done.stdout)) == ["c.png", "d.jpg"]
    done = cli("remove", media / "a.png", library=library.path)
    assert done.returncode == 0 and done.stdout.strip() == f"{media / 'a.png'}\timage"
    assert "removed 1 item from the library" in done.stderr
    done = cli("remove", tmp_path / "nowhere.png", library=library.path)
    assert done.returncode == 2 and done.stderr.startswith("error: not in the library")
    assert len(done.stderr.strip().splitlines()) == 1


# -- export ----------------------------------------------------------------------------------


def test_export_npz_and_parquet_hold_every_vector_with_its_metadata(library, media, tmp_path):
    library.index([media], workers=0)
    library.tag([media / "a.png"], add=["red", "first"])
    stored = {}
    for modality in (Modality.IMAGE, Modality.TEXT):
        ids, vectors = library.stored_vectors(modality)
        paths = library.items(ids.tolist())
        stored.update({paths[int(i)][0]: (modality.value, v) for i, v in zip(ids, vectors)})

    report = library.export(tmp_path / "all.npz")
    assert (report.items, report.format, report.modalities) == (6, "npz", {"image": 4, "text": 2})
    with np.load(tmp_path / "all.npz", allow_pickle=False) as data:
        assert str(data["space"]) == library.space_name and str(data["fingerprint"]) == library.fingerprint
        assert data["vector"].dtype == np.float32 and data["vector"].shape == (6, library.dim)
        rows = {p: (m, v, json.loads(t)) for p, m, v, t in
                zip(data["path"], data["modality"], data["vector"], data["tags"])}
    assert set(rows) == set(stored)
    for path, (modality, vector, tags) in rows.items():
        assert modality == stored[path][0]
        np.testing.assert_array_equal(vector, stored[path][1])
        assert tags == (["first", "red"] if path.endswith("a.png") else [])

    report = library.export(tmp_path / "images.parquet", modalities=["image"], paths=[str(media / "sub")])
    assert report.items == 2 and report.format == "parquet"
    table = pq.read_table(tmp_path / "images.parquet")
    assert table.column_names == ["path", "modality", "vector", "tags"]
    assert table.schema.field("vector").type.list_size == library.dim
    assert table.schema.metadata[b"bindsearch.fingerprint"].decode() == library.fingerprint
    for row in table.to_pylist():
        assert row["modality"] == "image" and row["path"].startswith(str(media / "sub"))
        np.testing.assert_array_equal(np.array(row["vector"], np.float32), stored[row["path"]][1])


def test_export_refuses_other_file_names_and_writes_nothing_half(library, media, tmp_path):
    library.index([media], workers=0)
    with pytest.raises(UsageError, match=r"name a \.npz or \.parquet file"):
        library.export(tmp_path / "vectors.csv")
    with pytest.raises(UsageError, match="no folder"):
        library.export(tmp_path / "missing" / "v.npz")
    done = cli("export", tmp_path / "v.txt", library=library.path)
    assert done.returncode == 2 and done.stderr.startswith("error: cannot export")
    done = cli("export", tmp_path / "v.npz", "--modality", "text", "--json", library=library.path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["modalities"] == {"text": 2}
    assert sorted(os.listdir(tmp_path)) == sorted(["lib", "media", "v.npz"])  # no temporary file left


# -- duplicates ------------------------------------------------------------------------------


def test_group_by_keeper_puts_each_item_in_one_group_near_its_keeper():
    neighbours = {1: {2: 0.99, 3: 0.97}, 2: {1: 0.99, 4: 0.96}, 3: {1: 0.97}, 4: {2: 0.96}, 5: {6: 0.98}, 6: {5: 0.98}}
    assert group_by_keeper([3, 1, 2, 4, 6, 5], neighbours) == [
        [(3, 1.0), (1, 0.97)],  # 3 is kept before 1; 2 is not a near-copy of 3
        [(2, 1.0), (4, 0.96)],
        [(6, 1.0), (5, 0.98)],
    ]
    assert keep_rank(("b", 10, 5, 60.0)) < keep_rank(("a", 99, 1, 30.0))  # longer first
    assert keep_rank(("b", 10, 5, None)) < keep_rank(("a", 9, 1, None))  # then larger
    assert keep_rank(("b", 10, 1, None)) < keep_rank(("a", 10, 5, None))  # then older


def test_duplicates_group_copies_with_the_oldest_kept_first(library, tmp_path):
    media = tmp_path / "photos"
    for seed in range(6):
        draw_image(media / f"p{seed}.png", seed=seed)
    (media / "backup").mkdir()
    shutil.copyfile(media / "p1.png", media / "backup" / "p1.png")
    shutil.copyfile(media / "p1.png", media / "backup" / "p1-again.png")
    for name, when in (("p1.png", 1_000_000_000), ("backup/p1-again.png", 1_100_000_000),
                       ("backup/p1.png", 1_200_000_000)):
        os.utime(media / name, (when, when))  # the same size: the oldest is kept
    library.index([media], workers=0)

    groups = library.duplicates(threshold=0.99999)
    assert len(groups) == 1 and groups[0].modality is Modality.IMAGE
    assert [Path(i.path).relative_to(media).as_posix() for i in groups[0].items] == [
        "p1.png", "backup/p1-again.png", "backup/p1.png"]
    assert all(i.score == pytest.approx(1.0, abs=1e-5) for i in groups[0].items)

    # At any threshold: every member is that close to its keeper, each item in one group at most,
    # and the keeper is the best by the rule among the group.
    ids, vectors = library.stored_vectors(Modality.IMAGE)
    cosine = dict(zip(ids.tolist(), vectors))
    for threshold in (0.5, 0.9, 0.99):
        seen: set[int] = set()
        for group in library.duplicates(threshold=threshold, modalities=["image"]):
            keeper = group.items[0]
            for item in group.items[1:]:
                assert float(cosine[keeper.id] @ cosine[item.id]) >= threshold - 1e-5
                assert (-item.size, item.mtime) >= (-keeper.size, keeper.mtime)
            assert not seen & {i.id for i in group.items}
            seen |= {i.id for i in group.items}


def test_duplicates_on_the_command_line(library, tmp_path):
    media = tmp_path / "photos"
    draw_image(media / "a.png", seed=1)
    draw_image(media / "b.png", seed=2)
    shutil.copyfile(media / "a.png", media / "a-copy.png")
    library.index([media], workers=0)
    done = cli("duplicates", "--threshold", "0.99999", "--json", library=library.path)
    assert done.returncode == 0, done.stderr
    groups = json.loads(done.stdout)
    assert len(groups) == 1 and {Path(i["path"]).name for i in groups[0]["items"]} == {"a.png", "a-copy.png"}
    piped = cli("duplicates", "--threshold", "0.99999", library=library.path)
    assert [line.split("\t")[:2] for line in piped.stdout.splitlines()] == [["1", "keep"], ["1", "copy"]]
    bad = cli("duplicates", "--threshold", "1.5", library=library.path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: the duplicate threshold")
