"""Searches only a shared space allows: arithmetic, --like, filters, calibration across modalities, dedup, tags;
on every pair of metadata (SQLite, PostgreSQL) and vector (files, Milvus Lite) backends."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from bindsearch.cli.app import app
from conftest import BACKENDS, library_places
from helpers import REPO, copy_examples, draw_image, write_wav
from old_schemas import to_schema_3
from typer.testing import CliRunner

import bindsearch
from bindsearch import Filters, QueryTerm
from bindsearch.errors import UsageError
from bindsearch.library.database import raw_cursor
from bindsearch.library.schema import SCHEMA_VERSION
from bindsearch.modality import Modality, modality_from_path
from bindsearch.search import query_vector

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"
runner = CliRunner()


@pytest.fixture(scope="module")
def space() -> bindsearch.Space:
    return bindsearch.load_space(TINY_IMAGEBIND)


@pytest.fixture(scope="module", params=BACKENDS)
def examples_library(request, tmp_path_factory, space):
    """The example folder (a file of every modality) indexed once for the module's read-only tests."""
    root = tmp_path_factory.mktemp("examples")
    media = copy_examples(root / "media")
    lib = bindsearch.open_library(library_places(request.param, root, request)("lib"), space, create=True)
    report = lib.index([media], workers=0)
    assert report.failed == 0, report.errors
    yield lib, media
    lib.close()


def cli(*args) -> object:
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_arithmetic_is_the_normalised_weighted_sum_of_normalised_terms(examples_library, space):
    lib, media = examples_library
    photo, sound = media / "coffee.jpg", media / "sounds" / "birdsong.wav"
    terms = [QueryTerm.text("a dog", 2.0), QueryTerm.file("image", photo), QueryTerm.file("audio", sound, -0.5)]
    parts = [space.embed("text", "a dog"), space.embed("image", photo), space.embed("audio", sound)]
    expected = 2.0 * parts[0] / np.linalg.norm(parts[0]) + parts[1] / np.linalg.norm(parts[1])
    expected -= 0.5 * parts[2] / np.linalg.norm(parts[2])
    expected /= np.linalg.norm(expected)
    vector, excluded = query_vector(lib, terms)
    np.testing.assert_allclose(vector, expected, atol=1e-6)
    assert excluded == frozenset()
    # The expression form on the command line is the same query: the same scores for every image.
    result = cli("query", "2:a dog", "+", photo, "-", f"0.5:{sound}", "--target", "image", "-k", 50,
                 "--json", "--library", lib.location)
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    ids, stored = lib.stored_vectors(Modality.IMAGE)
    by_id = dict(zip(ids.tolist(), stored @ expected))
    assert len(hits) == len(ids) == 5
    for hit in hits:
        assert hit["score"] == pytest.approx(float(by_id[hit["id"]]), abs=1e-5)
    # And so is the flag form, with weights as W: prefixes and --minus.
    flags = cli("query", "--text", "2:a dog", "--image", photo, "--minus", f"0.5:{sound}", "--target", "image",
                "-k", 50, "--json", "--library", lib.location)
    assert [h["score"] for h in json.loads(flags.stdout)] == [h["score"] for h in hits]


def test_like_uses_the_stored_vector_and_leaves_the_item_out(examples_library):
    lib, media = examples_library
    photo = media / "cat.jpg"
    hits = lib.search([QueryTerm.like(photo)], targets=["image"], k=10)
    assert len(hits) == 4 and str(photo) not in [h.path for h in hits]
    ids, stored = lib.stored_vectors(Modality.IMAGE)
    own = next(h for h in lib.search([QueryTerm.file("image", photo)], targets=["image"], k=1))
    assert own.path == str(photo) and own.score == pytest.approx(1.0, abs=1e-5)
    vector = stored[list(ids).index(own.id)]
    for hit in hits:
        assert hit.score == pytest.approx(float(stored[list(ids).index(hit.id)] @ vector), abs=1e-5)
    # By id too, and a video leaves out its soundtrack as well.
    assert [h.id for h in lib.search([QueryTerm.like(own.id)], targets=["image"], k=10)] == [h.id for h in hits]
    video = media / "clips" / "bands.mp4"
    everything = lib.search([QueryTerm.like(video)], targets="all", k=50)
    assert str(video) not in [h.path for h in everything]
    assert len(everything) == sum(lib.counts().values()) - 2
    result = cli("query", "--like", photo, "--target", "image", "--paths", "--library", lib.location)
    assert str(photo) not in result.stdout.split("\n") and len(result.stdout.split()) == 4


def test_like_of_something_not_indexed_is_a_one_line_error(examples_library, tmp_path):
    lib, _ = examples_library
    with pytest.raises(UsageError, match="not in the library"):
        lib.search([QueryTerm.like(tmp_path / "nothing.jpg")])
    with pytest.raises(UsageError, match="no embedded item with id 99999"):
        lib.search([QueryTerm.like(99999)])


@pytest.mark.parametrize("relative", [
    "coffee.jpg", "sounds/speech.wav", "notes/breakfast.md", "depth/room.png", "thermal/person.png",
    "imu/walk.csv", "clips/bands.mp4", "sounds/birdsong.wav",
])
def test_calibration_ranks_an_exact_duplicate_first_whatever_its_modality(examples_library, relative):
    lib, media = examples_library
    path = media / relative
    modality = modality_from_path(str(path))
    hits = lib.search([QueryTerm.file(modality, path)], targets=["all"], k=5)
    assert (hits[0].path, hits[0].modality) == (str(path), modality)
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert len({h.modality for h in lib.search([QueryTerm.file(modality, path)], targets=["all"], k=30)}) > 1


def test_calibrated_scores_standardise_each_modality_and_rank_the_merged_list(examples_library):
    lib, _ = examples_library
    vector, _ = query_vector(lib, [QueryTerm.text("a cup of coffee")])
    hits = lib.search(vector, targets=["all"], k=100)
    assert {h.modality for h in hits} == set(lib.counts())
    pooled = np.concatenate([lib.reference_sample(m) for m in lib.counts()])
    for hit in hits:
        reference = lib.reference_sample(hit.modality)
        if len(reference) < 8:  # too few of its own for a spread: every modality's vectors pooled
            reference = pooled
        scores = reference @ vector
        std = scores.std()
        expected = (hit.score - scores.mean()) / std if len(scores) >= 2 and std > 1e-6 else hit.score
        assert hit.calibrated == pytest.approx(float(expected), rel=1e-4, abs=1e-4)
    assert [h.calibrated for h in hits] == sorted((h.calibrated for h in hits), reverse=True)


def test_a_filtered_query_returns_k_items_when_k_pass(place, tmp_path, space):
    media = tmp_path / "media"
    for i in range(40):
        draw_image(media / ("keep" if i % 3 == 0 else "other") / f"{i:02d}.png", seed=i)
    with bindsearch.open_library(place("lib"), space, create=True) as lib:
        lib.index([media], workers=0)
        kept = sorted((media / "keep").iterdir())
        assert len(kept) == 14
        lib.tag(kept[:12], add=["chosen"])
        probe = QueryTerm.file("image", media / "other" / "01.png")
        unfiltered = lib.search([probe], targets=["image"], k=10)
        assert any("chosen" not in h.tags for h in unfiltered)  # a filter applied after the top 10 would fall short
        tagged = lib.search([probe], targets=["image"], k=10, filters=Filters(tags=("chosen",)))
        assert len(tagged) == 10 and all(h.tags == ("chosen",) for h in tagged)
        assert len(lib.search([probe], k=50, filters=Filters(tags=("chosen",)))) == 12
        under = lib.search([probe], k=10, filters=Filters(paths=(str(media / "keep"),)))
        assert len(under) == 10 and all(h.path.startswith(str(media / "keep") + os.sep) for h in under)
        globbed = lib.search([probe], k=50, filters=Filters(paths=("*/keep/0*.png",)))
        assert sorted(h.path for h in globbed) == [str(p) for p in kept if p.name.startswith("0")]
        by_name = lib.search([probe], k=50, filters=Filters(paths=("1?.png",)))
        assert sorted(Path(h.path).name for h in by_name) == [f"{i}.png" for i in range(10, 20)]
        with pytest.raises(UsageError, match="no item in the library carries the tag 'missing'"):
            lib.search([probe], k=5, filters=Filters(tags=("chosen", "missing")))  # said, not "no results"
        # The same through the command line.
        result = cli("query", "--image", media / "other" / "01.png", "--tag", "chosen", "-k", 10, "--json",
                     "--library", lib.location)
        assert result.exit_code == 0, result.output
        assert len(json.loads(result.stdout)) == 10


def test_size_date_and_duration_filters(place, tmp_path, space):
    media = tmp_path / "media"
    write_wav(media / "short.wav", seconds=1.0)
    write_wav(media / "long.wav", seconds=5.0, freq=220)
    draw_image(media / "small.png", seed=1, size=(20, 20))
    draw_image(media / "big.png", seed=2, size=(400, 300))
    old = time.time() - 10 * 86400
    os.utime(media / "small.png", (old, old))
    with bindsearch.open_library(place("lib"), space, create=True) as lib:
        lib.index([media], workers=0)
        query = [QueryTerm.text("anything")]

        def names(**filters) -> set[str]:
            return {Path(h.path).name for h in lib.search(query, k=10, filters=Filters(**filters))}

        big = (media / "big.png").stat().st_size
        assert names(min_size=big) == {"big.png"} | {n for n in ("short.wav", "long.wav")
                                                     if (media / n).stat().st_size >= big}
        assert names(max_size=(media / "small.png").stat().st_size) == {"small.png"}
        assert names(modified_before=time.time() - 86400) == {"small.png"}
        assert "small.png" not in names(modified_after=time.time() - 86400)
        assert names(min_duration=3.0) == {"long.wav"}
        assert names(max_duration=3.0) == {"short.wav"}  # images have no duration: they fail the filter
        with pytest.raises(UsageError, match="excludes everything"):
            Filters(min_size=10, max_size=5)
        result = cli("query", "--text", "x", "--min-size", "1k", "--after", "2000-01-01", "--paths",
                     "--library", lib.location)
        assert result.exit_code == 0, result.output
        assert set(result.stdout.split()) == {str(media / n) for n in os.listdir(media)
                                              if (media / n).stat().st_size >= 1024}


def test_dedup_collapses_copies_and_still_fills_k(place, tmp_path, space):
    media = tmp_path / "media"
    for i in range(8):
        draw_image(media / f"{i}.png", seed=i)
    for n in range(3):
        shutil.copy(media / "0.png", media / f"copy{n}.png")
    with bindsearch.open_library(place("lib"), space, create=True) as lib:
        lib.index([media], workers=0)
        probe = [QueryTerm.file("image", media / "0.png")]
        plain = lib.search(probe, k=5)
        assert {Path(h.path).name for h in plain[:4]} == {"0.png", "copy0.png", "copy1.png", "copy2.png"}
        distinct = lib.search(probe, k=5, dedup=0.999)
        assert len(distinct) == 5
        names = [Path(h.path).name for h in distinct]
        assert sum(n == "0.png" or n.startswith("copy") for n in names) == 1
        assert [h.rank for h in distinct] == [1, 2, 3, 4, 5]


def test_tags_stay_through_changes_and_moves_and_go_with_the_item(place, tmp_path, space):
    media = tmp_path / "media"
    draw_image(media / "a.png", seed=1)
    draw_image(media / "b.png", seed=2)
    with bindsearch.open_library(place("lib"), space, create=True) as lib:
        lib.index([media], workers=0)
        tagged = lib.tag([media], add=["holiday", " family "])
        assert [(Path(t.path).name, t.tags) for t in tagged] == [("a.png", ["family", "holiday"]),
                                                                 ("b.png", ["family", "holiday"])]
        assert lib.tag([media / "b.png"], remove=["family"])[0].tags == ["holiday"]
        draw_image(media / "a.png", seed=3)  # changed: embedded again, same item
        (media / "b.png").rename(media / "moved.png")
        report = lib.index([media], workers=0)
        assert (report.updated, report.moved) == (1, 1)
        hits = {Path(h.path).name: h.tags for h in lib.search([QueryTerm.text("x")], k=5)}
        assert hits == {"a.png": ("family", "holiday"), "moved.png": ("holiday",)}
        (media / "moved.png").unlink()
        lib.index([media], workers=0)
        with raw_cursor(lib._engine) as db:
            assert db.execute("SELECT COUNT(*) FROM tags").fetchone()[0] == 2  # a.png's only
        with pytest.raises(UsageError, match="not in the library"):
            lib.tag([tmp_path / "elsewhere"], add=["x"])
        with pytest.raises(UsageError, match="cannot be empty"):
            lib.tag([media], add=[" "])


def test_tag_command(place, tmp_path, space):
    media = tmp_path / "media"
    draw_image(media / "a.png", seed=1)
    lib_path = place("lib")
    with bindsearch.open_library(lib_path, space, create=True) as lib:
        lib.index([media], workers=0)
    result = cli("tag", media / "a.png", "--add", "cat", "--json", "--library", lib_path)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"path": str(media / "a.png"), "modality": "image", "tags": ["cat"]}]
    listed = cli("tag", media, "--library", lib_path)
    assert "cat" in listed.stdout
    missing = cli("tag", tmp_path / "nope.png", "--add", "x", "--library", lib_path)
    assert missing.exit_code == 2 and "not in the library" in missing.output


def test_a_schema_2_library_is_migrated_and_its_durations_read_on_the_next_run(tmp_path, space):
    media, lib_path = tmp_path / "media", tmp_path / "lib"
    write_wav(media / "a.wav", seconds=3.0)
    draw_image(media / "p.png", seed=1)
    with bindsearch.open_library(lib_path, space, create=True) as lib:
        lib.index([media], workers=0)
    to_schema_3(lib_path)
    with sqlite3.connect(lib_path / "library.sqlite") as db:
        db.execute("DROP TABLE tags")
        db.execute("ALTER TABLE items DROP COLUMN duration")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with bindsearch.open_library(lib_path) as lib:
        assert lib.info().schema_version == SCHEMA_VERSION == 5
        assert len(lib.search([QueryTerm.text("x")], k=5)) == 2
        assert lib.search([QueryTerm.text("x")], k=5, filters=Filters(min_duration=1.0)) == []  # not known yet
        report = lib.index([media], workers=0)
        assert (report.unchanged, report.embedded) == (2, 0)
        found = lib.search([QueryTerm.text("x")], k=5, filters=Filters(min_duration=2.9, max_duration=3.1))
        assert [Path(h.path).name for h in found] == ["a.wav"]
    # A length the headers do not tell is asked once, recorded as unknown, and fails duration filters.
    with sqlite3.connect(lib_path / "library.sqlite") as db:
        db.execute("UPDATE items SET duration = NULL")
    st = (media / "a.wav").stat()
    (media / "a.wav").write_bytes(b"\0" * st.st_size)  # same size and mtime: unchanged, but unreadable now
    os.utime(media / "a.wav", ns=(st.st_atime_ns, st.st_mtime_ns))
    with bindsearch.open_library(lib_path) as lib:
        assert lib.index([media], workers=0).unchanged == 2
        assert lib.search([QueryTerm.text("x")], k=5, filters=Filters(max_duration=100.0)) == []
    with sqlite3.connect(lib_path / "library.sqlite") as db:
        durations = {os.fsdecode(p): d for p, d in db.execute("SELECT path, duration FROM items")}
    assert durations == {str(media / "a.wav"): -1.0, str(media / "p.png"): None}


def test_query_output_forms(examples_library):
    lib, media = examples_library
    as_json = cli("query", "--image", media / "cat.jpg", "-k", 3, "--json", "--library", lib.location)
    hits = json.loads(as_json.stdout)
    assert set(hits[0]) == {"rank", "score", "calibrated", "modality", "path", "id", "start", "end", "tags"}
    paths = cli("query", "--image", media / "cat.jpg", "-k", 3, "--paths", "--library", lib.location)
    assert paths.stdout.split("\n")[:3] == [h["path"] for h in hits]
    table = cli("query", "--image", media / "cat.jpg", "-k", 3, "--library", lib.location)
    assert "calibrated" in table.stdout or "\t" in table.stdout
    both = cli("query", "--text", "x", "--json", "--paths", "--library", lib.location)
    assert both.exit_code == 2 and "choose one of --json and --paths" in both.output


def _changing_sound(path: Path, seconds: float, seed: int) -> None:
    """A recording whose every second sounds different (a tone of its own over noise)."""
    import soundfile

    rng, rate = np.random.default_rng(seed), 16000
    t = np.arange(rate) / rate
    parts = [0.5 * np.sin(2 * np.pi * rng.uniform(150, 3000) * t) + 0.2 * rng.standard_normal(rate)
             for _ in range(int(seconds))]
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.concatenate(parts).astype(np.float32) / 2, rate, subtype="PCM_16")


def test_time_windows_are_searched_and_follow_their_file(place, tmp_path, space):
    media = tmp_path / "media"
    _changing_sound(media / "a.wav", 12.0, seed=1)
    with bindsearch.open_library(place("lib"), space, create=True) as lib:
        assert lib.index([media], workers=0).windows == {"audio": 4}
        shutil.copy(media / "a.wav", media / "b.wav")  # a copy gets the windows of its content, unembedded
        report = lib.index([media], workers=0)
        assert (report.added, report.embedded, report.windows) == (1, 0, {})
        item = lib.stored_item_vector(str(media / "a.wav"))[0][0]
        windows = lib.windows_of(item)
        assert [(s, e) for s, e, _ in windows] == [(0.0, 6.0), (2.0, 8.0), (4.0, 10.0), (6.0, 12.0)]
        for start, end, vector in windows:  # a moment of each copy, around the window searched for
            moments = lib.search(vector, targets=["audio"], k=8, windows=True)
            assert {m.path for m in moments} == {str(media / "a.wav"), str(media / "b.wav")}
            for m in moments:
                assert m.score == pytest.approx(1.0, abs=1e-5) and m.start <= start < end <= m.end
        _changing_sound(media / "a.wav", 16.0, seed=2)  # changed: new windows in place of the old
        (media / "b.wav").unlink()
        report = lib.index([media], workers=0)
        assert (report.updated, report.removed, report.windows) == (1, 1, {"audio": 6})
        assert lib.info().windows == {"audio": 6}
        assert lib.vector_index(Modality.AUDIO, windows=True).size == 6
        moments = lib.search([QueryTerm.file("audio", media / "a.wav")], targets=["audio"], k=20, windows=True)
        assert {m.path for m in moments} == {str(media / "a.wav")}  # the copy's windows went with it
    with bindsearch.open_library(place("lib")) as lib:
        assert lib.vector_index(Modality.AUDIO, windows=True).size == 6
