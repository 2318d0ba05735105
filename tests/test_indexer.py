"""Indexing: incremental mark and sweep, moves and copies, bad files, odd folders."""

import os
import shutil
import time

import numpy as np
import pytest
from helpers import REPO, draw_image, permission_bits_prefix, run_index_cli

import bindsearch
from bindsearch.errors import UsageError
from bindsearch.modality import Modality


def stored(lib, modality=Modality.IMAGE):
    ids, vectors = lib.stored_vectors(modality)
    paths = lib.items(ids)
    return {paths[i][0]: (int(i), v) for i, v in zip(ids, vectors)}


def test_first_run_indexes_images_and_text(library, media):
    report = library.index([media])
    assert (report.added, report.failed, report.embedded) == (6, 0, 6)
    assert library.counts() == {Modality.IMAGE: 4, Modality.TEXT: 2}
    # Stored vectors are what the encoder gives for the file.
    vec = library.space.embed("image", media / "sub" / "c.png")
    np.testing.assert_allclose(stored(library)[str(media / "sub" / "c.png")][1], vec, atol=1e-6)


def test_query_by_an_indexed_image_finds_it_first(library, media):
    library.index([media])
    hits = library.search([bindsearch.QueryTerm.file("image", media / "b.jpg")], targets=["image"])
    assert hits[0].path == str(media / "b.jpg")
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert len(hits) == 4


def test_second_run_is_stat_only_and_loads_no_model(tmp_path, tiny_space_file, media):
    with bindsearch.open_library(tmp_path / "lib", tiny_space_file, create=True) as lib:
        lib.index([media])
    with bindsearch.open_library(tmp_path / "lib") as lib:
        report = lib.index([media])
        assert (report.unchanged, report.added, report.updated, report.embedded) == (6, 0, 0, 0)
        assert lib.space._model is None


def test_changed_file_is_embedded_again_with_the_same_id(library, media):
    library.index([media])
    before = stored(library)[str(media / "a.png")]
    draw_image(media / "a.png", seed=99)
    report = library.index([media])
    assert (report.updated, report.unchanged, report.embedded) == (1, 5, 1)
    after = stored(library)[str(media / "a.png")]
    assert after[0] == before[0]
    assert not np.allclose(after[1], before[1])
    assert library.search(after[1], targets=["image"], k=1)[0].score == pytest.approx(1.0, abs=1e-5)


def test_touched_file_with_same_content_is_not_embedded(library, media):
    library.index([media])
    later = time.time() + 100
    os.utime(media / "a.png", (later, later))
    report = library.index([media])
    assert (report.unchanged, report.embedded, report.updated) == (6, 0, 0)
    assert library.index([media]).unchanged == 6  # new mtime recorded: a stat is enough now


def test_moved_file_keeps_its_id_and_vector(library, media):
    library.index([media])
    before = stored(library)[str(media / "sub" / "d.jpg")]
    (media / "moved").mkdir()
    shutil.move(media / "sub" / "d.jpg", media / "moved" / "renamed.jpg")
    report = library.index([media])
    assert (report.moved, report.removed, report.added, report.embedded) == (1, 0, 0, 0)
    after = stored(library)
    assert str(media / "sub" / "d.jpg") not in after
    assert after[str(media / "moved" / "renamed.jpg")][0] == before[0]
    hits = library.search(before[1], targets=["image"], k=1)
    assert hits[0].path == str(media / "moved" / "renamed.jpg")


def test_copied_file_reuses_the_vector_without_embedding(library, media):
    library.index([media])
    shutil.copy(media / "a.png", media / "copy-of-a.png")
    report = library.index([media])
    assert (report.added, report.embedded) == (1, 0)
    vectors = stored(library)
    np.testing.assert_array_equal(vectors[str(media / "copy-of-a.png")][1], vectors[str(media / "a.png")][1])


def test_deleted_file_is_removed_from_index_and_metadata(library, media):
    library.index([media])
    (media / "b.jpg").unlink()
    report = library.index([media])
    assert (report.removed, report.unchanged) == (1, 5)
    assert str(media / "b.jpg") not in stored(library)
    paths = [h.path for h in library.search([bindsearch.QueryTerm.text("anything")], k=50)]
    assert str(media / "b.jpg") not in paths and len(paths) == 5
    assert library.vector_index(Modality.IMAGE).size == 3


def test_indexing_one_folder_leaves_other_folders_alone(library, tmp_path):
    draw_image(tmp_path / "one" / "x.png", 1)
    draw_image(tmp_path / "two" / "y.png", 2)
    draw_image(tmp_path / "one-more" / "z.png", 3)  # shares a name prefix with "one"
    library.index([tmp_path / "one", tmp_path / "two", tmp_path / "one-more"])
    (tmp_path / "two" / "y.png").unlink()
    report = library.index([tmp_path / "one"])
    assert (report.unchanged, report.removed) == (1, 0)
    assert library.counts()[Modality.IMAGE] == 3


def test_bad_files_are_recorded_and_the_run_goes_on(library, media):
    (media / "empty.jpg").write_bytes(b"")
    (media / "notes.jpg").write_text("this is a text file with an image name\n")
    good = (media / "a.png").read_bytes()
    (media / "truncated.png").write_bytes(good[: len(good) // 3])
    jpeg = (media / "b.jpg").read_bytes()
    (media / "truncated.jpg").write_bytes(jpeg[:200])
    (media / "folder.jpg").mkdir()  # a directory with an image name: walked, not read
    draw_image(media / "folder.jpg" / "inside.png", seed=5)
    report = library.index([media])
    reasons = {os.path.basename(e.path): e.reason for e in report.errors}
    assert set(reasons) == {"empty.jpg", "notes.jpg", "truncated.png", "truncated.jpg"}
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert "plain text, not image" in reasons["notes.jpg"]
    assert "truncated" in reasons["truncated.png"] or "corrupt" in reasons["truncated.png"]
    assert all("\n" not in r for r in reasons.values())
    assert report.failed == 4 and report.added == 7
    info = library.info()
    assert {os.path.basename(f.path) for f in info.failed} == set(reasons)


def test_failed_file_is_retried_and_recovers(library, media):
    (media / "later.png").write_bytes(b"")
    assert library.index([media]).failed == 1
    assert library.index([media]).failed == 1  # still bad: reported again
    draw_image(media / "later.png", seed=42)
    report = library.index([media])
    assert (report.failed, report.added) == (0, 1)
    assert library.info().failed == []


def test_file_that_goes_bad_loses_its_vector(library, media):
    library.index([media])
    (media / "a.png").write_bytes(b"broken")
    report = library.index([media])
    assert report.failed == 1
    assert str(media / "a.png") not in stored(library)
    assert library.vector_index(Modality.IMAGE).size == 3


def test_hidden_files_and_the_library_folder_are_skipped(tiny_space, media):
    draw_image(media / ".hidden.png", 1)
    draw_image(media / ".cache" / "thumb.png", 2)
    with bindsearch.open_library(media / "the-library", tiny_space, create=True) as lib:
        report = lib.index([media])
        assert report.added == 6
        assert report.failed == 0


def test_symlink_loops_and_dangling_links(library, media):
    os.symlink(media, media / "sub" / "loop")
    os.symlink(media / "nowhere.png", media / "dangling.png")
    report = library.index([media])
    assert report.added == 6  # the loop did not index anything twice
    assert [(os.path.basename(e.path), e.reason) for e in report.errors] == [
        ("dangling.png", "broken symbolic link (its target does not exist)")
    ]


def test_non_utf8_file_names(library, tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9-\xff.png")  # Latin-1 bytes, not valid UTF-8
    draw_image(folder / name, seed=8)
    assert library.index([folder]).added == 1
    hits = library.search([bindsearch.QueryTerm.file("image", folder / name)], targets=["image"])
    assert hits[0].path == str(folder / name)
    assert library.index([folder]).unchanged == 1


def test_unreadable_file_and_folder(library, media):
    # As root, the second run is the real CLI in a process without the capabilities that let root read
    # anything (through setpriv); otherwise it is this process, as is.
    prefix = permission_bits_prefix()
    library.index([media])
    os.chmod(media / "a.png", 0)
    os.chmod(media / "sub", 0)
    try:
        if prefix is None:
            report = library.index([media])
            errors = [(e.path, e.reason) for e in report.errors]
            interrupted = report.interrupted
        else:
            report, done = run_index_cli(prefix, media, "--library", library.path)
            assert done.returncode == 3, done.stderr  # some files failed, the run went on to the end
            errors = [(e["path"], e["reason"]) for e in report["errors"]]
            interrupted = report["interrupted"]
    finally:
        os.chmod(media / "a.png", 0o644)
        os.chmod(media / "sub", 0o755)
    assert not interrupted
    reasons = {os.path.basename(path): reason for path, reason in errors}
    assert reasons["sub"].endswith("permission denied")
    assert all("\n" not in reason for reason in reasons.values())
    # What the library holds under the unreadable folder is kept.
    assert str(media / "sub" / "c.png") in stored(library)


def test_forced_modality(library, tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "readme.rst").write_text("a dog barking")
    report = library.index([tmp_path / "logs"], modality="text")
    assert report.added == 1
    with pytest.raises(UsageError, match="cannot embed audio"):
        library.index([tmp_path / "logs"], modality="audio")


def test_media_the_space_cannot_embed_is_skipped_not_failed(library, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "song.wav").write_bytes(b"RIFF....WAVE")
    draw_image(tmp_path / "m" / "x.png", 1)
    report = library.index([tmp_path / "m"])
    assert (report.added, report.skipped, report.failed) == (1, 1, 0)


def test_missing_path_is_a_usage_error(library, tmp_path):
    with pytest.raises(UsageError, match="no such file or folder"):
        library.index([tmp_path / "nope"])


def test_a_single_file_can_be_indexed(library, media):
    report = library.index([media / "a.png"])
    assert report.added == 1
    (media / "a.png").unlink()
    draw_image(media / "a.png", seed=50)
    assert library.index([media / "a.png"]).updated == 1


def test_batches_of_one_give_the_same_vectors(tmp_path, tiny_space, media):
    with bindsearch.open_library(tmp_path / "l1", tiny_space, create=True) as one, \
            bindsearch.open_library(tmp_path / "l2", tiny_space, create=True) as many:
        one.index([media], batch_size=1)
        many.index([media], batch_size=64)
        a, b = stored(one), stored(many)
        assert a.keys() == b.keys()
        for path in a:
            np.testing.assert_allclose(a[path][1], b[path][1], atol=1e-5)


class _InterruptAfter(bindsearch.IndexObserver):
    """Acts like Ctrl-C once ``n`` files are done."""

    def __init__(self, n):
        self.n = n
        self.done = 0

    def advanced(self, n=1, modality=None):
        self.done += n
        if self.done >= self.n:
            raise KeyboardInterrupt


def test_interrupted_run_keeps_committed_batches_and_a_rerun_finishes(tmp_path, tiny_space):
    for i in range(10):
        draw_image(tmp_path / "m" / f"{i}.png", seed=i)
    with bindsearch.open_library(tmp_path / "lib", tiny_space, create=True) as lib:
        report = lib.index([tmp_path / "m"], batch_size=4, observer=_InterruptAfter(4))
        assert report.interrupted and report.added == 4
    with bindsearch.open_library(tmp_path / "lib") as lib:
        assert lib.counts() == {Modality.IMAGE: 4}
        again = lib.index([tmp_path / "m"], batch_size=4)
        assert (again.unchanged, again.added, again.embedded) == (4, 6, 6)
        assert lib.vector_index(Modality.IMAGE).size == 10


def test_embedding_workers_store_what_the_main_process_would(tmp_path):
    """On a CPU the workers embed the batches they read: same vectors, same failures, as reading in turn."""
    from helpers import write_wav

    media = tmp_path / "media"
    for i in range(9):
        draw_image(media / "photos" / f"{i}.png", seed=i)
    for i in range(3):
        write_wav(media / "sounds" / f"{i}.wav", seconds=1.0 + i, freq=300 + 100 * i)
    write_wav(media / "sounds" / "long.wav", seconds=12.0, freq=500)  # cut into time windows too
    (media / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    space = bindsearch.load_space(REPO / "examples" / "tiny-imagebind.json")
    stored = {}
    for workers in (0, 2):
        with bindsearch.open_library(tmp_path / f"lib{workers}", space, create=True) as lib:
            report = lib.index([media], workers=workers, batch_size=4)
            assert (report.added, report.failed, report.windows) == (13, 1, {"audio": 4}), report
            vectors = {}
            for modality in (Modality.IMAGE, Modality.AUDIO):
                ids, found = lib.stored_vectors(modality)
                rows = lib.items(list(ids))
                vectors.update({rows[int(i)][0]: v for i, v in zip(ids, found)})
            long_id = next(i for i, (p, _) in lib.items(list(lib.stored_vectors(Modality.AUDIO)[0])).items()
                           if p.endswith("long.wav"))
            vectors["windows"] = np.stack([v for _, _, v in lib.windows_of(long_id)])
            stored[workers] = (vectors, [e.reason for e in report.errors])
    (inline, inline_errors), (in_workers, worker_errors) = stored[0], stored[2]
    assert inline_errors == worker_errors and set(inline) == set(in_workers)
    for key, vector in inline.items():
        np.testing.assert_allclose(in_workers[key], vector, atol=1e-5, err_msg=key)


def test_batcher_groups_tasks_of_one_modality_and_sends_pieces_alone():
    from bindsearch.indexer.pipeline import Batcher, Task, TaskQueue

    tasks = [Task(i, f"/m/{i}", m, None) for i, m in enumerate(
        [Modality.IMAGE, Modality.AUDIO, Modality.IMAGE, Modality.IMAGE, Modality.AUDIO, Modality.IMAGE])]
    queue = TaskQueue(tasks)
    batches = Batcher(queue, lambda m: 3 if m is Modality.IMAGE else 4)
    assert [t.index for t in batches.next()] == [0, 2, 3]
    queue.push_front([Task(9, "/m/long", Modality.AUDIO, None, clips=((0.0, 2.0),), chunk=0)])
    assert [t.index for t in batches.next()] == [9]  # a piece of a long file goes at once, alone
    assert [t.index for t in batches.next()] == [1, 4]  # nothing left to read: the fullest partial batch
    assert [t.index for t in batches.next()] == [5]
    assert batches.next() is None


def test_default_embedding_workers_use_every_core():
    from bindsearch.indexer.pipeline import default_embedding_workers

    assert default_embedding_workers(1) == (1, 1)
    assert default_embedding_workers(2) == (2, 1)
    assert default_embedding_workers(4) == (4, 1)
    assert default_embedding_workers(8) == (4, 2)
    assert default_embedding_workers(16) == (8, 2)
    assert default_embedding_workers(64) == (8, 8)
