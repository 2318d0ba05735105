"""Long audio and video as time windows: the window math, what a library stores, and finding a moment."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from helpers import REPO, draw_image, write_video, write_wav
from old_schemas import to_schema_3

import bindsearch
from bindsearch.library.schema import SCHEMA_VERSION
from bindsearch.modality import Modality
from bindsearch.windows import (
    OFF,
    WindowSettings,
    chunks,
    clip_grid,
    file_windows,
    format_time,
    pool_windows,
    window_spans,
    window_times,
)

SPACE_FILE = REPO / "examples" / "tiny-imagebind.json"
RATE = 16000


@pytest.fixture(scope="module")
def space() -> bindsearch.Space:
    return bindsearch.load_space(SPACE_FILE)


# -- the window math -------------------------------------------------------------------------


def test_clip_grid_tiles_the_file_and_keeps_a_long_enough_tail():
    assert clip_grid(7.0) == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 7.0)]
    assert clip_grid(6.3) == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]  # a 0.3 s tail is dropped
    assert clip_grid(1.0) == [(0.0, 1.0)]
    assert clip_grid(0.0) == []
    with pytest.raises(ValueError):
        clip_grid(float("nan"))


def test_window_spans_cover_every_clip_and_start_every_hop():
    assert window_spans(10, 3, 1) == [(i, i + 3) for i in range(8)]
    assert window_spans(10, 3, 2) == [(0, 3), (2, 5), (4, 7), (6, 9), (7, 10)]  # the last moved back
    assert window_spans(4, 3, 1) == [(0, 3), (1, 4)]
    assert window_spans(3, 3, 1) == []  # one window would only repeat the whole-file vector
    for n, per, hop in [(50, 3, 1), (51, 4, 3), (9, 2, 2)]:
        spans = window_spans(n, per, hop)
        covered = set().union(*(range(a, b) for a, b in spans))
        assert covered == set(range(n))
        assert all(b - a == per for a, b in spans)
    with pytest.raises(ValueError):
        window_spans(10, 2, 3)


def test_pool_windows_is_the_normalised_mean_of_each_windows_clips():
    rng = np.random.default_rng(0)
    clips = rng.standard_normal((12, 5)).astype(np.float32)
    clips /= np.linalg.norm(clips, axis=1, keepdims=True)
    spans = window_spans(12, 3, 2)
    pooled = pool_windows(clips, spans)
    for (a, b), row in zip(spans, pooled):
        mean = clips[a:b].mean(axis=0)
        np.testing.assert_allclose(row, mean / np.linalg.norm(mean), atol=1e-6)
    assert pool_windows(clips, []).shape == (0, 5)
    with pytest.raises(ValueError):
        pool_windows(clips, [(10, 13)])
    with pytest.raises(ValueError):
        pool_windows(clips[0], spans)


def test_file_windows_and_their_times():
    clips, spans = file_windows(11.0, WindowSettings(6, 2))
    assert window_times(clips, spans) == [(0.0, 6.0), (2.0, 8.0), (4.0, 10.0), (6.0, 11.0)]
    assert file_windows(6.0, WindowSettings()) == ([], [])  # not longer than one window
    assert file_windows(None, WindowSettings()) == ([], [])
    assert file_windows(100.0, OFF) == ([], [])
    assert chunks(70, 32) == [(0, 32), (32, 64), (64, 70)]


def test_window_settings_are_checked_and_changed():
    assert WindowSettings().to_dict() == {"seconds": 6.0, "hop": 2.0}
    assert WindowSettings.from_dict({"seconds": 8, "hop": 4}) == WindowSettings(8, 4)
    for bad in [{"seconds": 5}, {"seconds": 6, "hop": 3}, {"seconds": 4, "hop": 6}, {"seconds": -2},
                {"seconds": "6"}, {"seconds": float("inf")}]:
        with pytest.raises(ValueError):
            WindowSettings.from_dict(bad)
    with pytest.raises(ValueError, match="unknown"):
        WindowSettings.from_dict({"length": 6})
    assert WindowSettings().changed(seconds=0) == OFF and not OFF.enabled
    assert WindowSettings(6, 4).changed(seconds=2) == WindowSettings(2, 2)  # the hop shrinks to fit
    assert OFF.changed(hop=4) == WindowSettings(6, 4)
    assert format_time(3725.0) == "1:02:05" and format_time(65.5) == "1:05.5"


# -- what an index run stores ----------------------------------------------------------------


def noise_with_tones(seconds: float, seed: int) -> np.ndarray:
    """Quiet noise with a different tone every second: no two clips alike."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    signal = 0.02 * rng.standard_normal(n)
    t = np.arange(RATE) / RATE
    for second in range(int(seconds)):
        signal[second * RATE : (second + 1) * RATE] += 0.3 * np.sin(2 * np.pi * 200 * 2 ** rng.uniform(0, 4) * t)
    return signal.astype(np.float32)


def stored_windows(library_path: Path) -> dict[str, list[tuple[float, float, np.ndarray]]]:
    """Every window's (start, end, vector), read from the database and the vector files as they lie on disk."""
    with sqlite3.connect(library_path / "library.sqlite") as db:
        dim = int(db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()[0])
        rows = db.execute(
            "SELECT items.path, items.modality, windows.start, windows.end, windows.slot FROM windows "
            "JOIN items ON items.id = windows.item_id ORDER BY items.path, items.modality, windows.start"
        ).fetchall()
    out: dict[str, list] = {}
    for path, modality, start, end, slot in rows:
        data = np.fromfile(library_path / "vectors" / f"{modality}.windows.f32", dtype="<f4", offset=4096)
        out.setdefault(f"{os.fsdecode(path)}:{modality}", []).append((start, end, data.reshape(-1, dim)[slot]))
    return out


@pytest.mark.parametrize("workers", [0, 1])
def test_window_vectors_are_pooled_from_the_clips_embedded_the_official_way(tmp_path, workers, monkeypatch):
    # The pooling arithmetic, checked in fp32: bf16's rounding differs a little with the batch a clip is in.
    monkeypatch.setenv("BINDSEARCH_DTYPE", "fp32")
    space = bindsearch.load_space(SPACE_FILE)
    media, signal = tmp_path / "media", noise_with_tones(21.0, seed=1)
    media.mkdir()
    soundfile.write(media / "long.wav", signal, RATE, subtype="FLOAT")
    write_wav(media / "short.wav", seconds=5.0)  # shorter than two windows: a whole-file vector only
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        report = lib.index([media], workers=workers)
        assert report.windows == {"audio": 9} and report.failed == 0
        assert lib.info().windows == {"audio": 9}
        assert lib.vector_index(Modality.AUDIO, windows=True).size == 9

    windows = stored_windows(tmp_path / "lib")[f"{media / 'long.wav'}:audio"]
    # 21 s: ten 2 s clips and a 1 s tail; 6 s windows every 2 s, the last one ending with the tail.
    expected_times = [(float(s), float(s + 6)) for s in range(0, 16, 2)] + [(16.0, 21.0)]
    assert [(s, e) for s, e, _ in windows] == expected_times
    # Each clip on its own, as a file: the official recipe gives a 2 s file three identical clips.
    clip_vectors = []
    for start, end in clip_grid(21.0):
        piece = tmp_path / f"clip-{start:g}.wav"
        soundfile.write(piece, signal[int(start * RATE) : int(end * RATE)], RATE, subtype="FLOAT")
        clip_vectors.append(space.embed("audio", piece))
    clip_vectors = np.stack(clip_vectors)
    for (_, _, vector), (first, stop) in zip(windows, [(i, i + 3) for i in range(9)], strict=True):
        mean = clip_vectors[first:stop].mean(axis=0)
        np.testing.assert_allclose(vector, mean / np.linalg.norm(mean), atol=2e-4)


def test_a_video_has_visual_windows_and_its_soundtrack_audio_windows(tmp_path, space):
    write_video(tmp_path / "media" / "walk.mp4", seconds=20.0, fps=10)
    with bindsearch.open_library(tmp_path / "lib", space, create=True) as lib:
        report = lib.index([tmp_path / "media"])
    assert report.windows["video"] == 8 and report.windows["audio"] >= 8, report
    windows = stored_windows(tmp_path / "lib")
    video = windows[f"{tmp_path / 'media' / 'walk.mp4'}:video"]
    assert [(s, e) for s, e, _ in video] == [(float(s), float(s + 6)) for s in range(0, 16, 2)]
    assert len(windows[f"{tmp_path / 'media' / 'walk.mp4'}:audio"]) == report.windows["audio"]


def test_windows_follow_their_file_through_changes_copies_and_deletion(tmp_path, space):
    media, lib_path = tmp_path / "media", tmp_path / "lib"
    media.mkdir()
    soundfile.write(media / "a.wav", noise_with_tones(12.0, seed=2), RATE, subtype="PCM_16")
    with bindsearch.open_library(lib_path, space, create=True) as lib:
        assert lib.index([media]).windows == {"audio": 4}
        # A copy gets the windows of the content it copies, without embedding anything.
        (media / "b.wav").write_bytes((media / "a.wav").read_bytes())
        report = lib.index([media])
        assert (report.added, report.embedded, report.windows) == (1, 0, {})
        stored = stored_windows(lib_path)
        a, b = stored[f"{media / 'a.wav'}:audio"], stored[f"{media / 'b.wav'}:audio"]
        assert [(s, e) for s, e, _ in a] == [(s, e) for s, e, _ in b] and len(a) == 4
        # A changed file gets new windows in place of the old ones.
        soundfile.write(media / "a.wav", noise_with_tones(16.0, seed=3), RATE, subtype="PCM_16")
        assert lib.index([media]).windows == {"audio": 6}
        (media / "b.wav").unlink()
        assert lib.index([media]).removed == 1
        assert lib.info().windows == {"audio": 6}
        assert lib.vector_index(Modality.AUDIO, windows=True).size == 6
    with bindsearch.open_library(lib_path) as lib:  # the FAISS file saved agrees with SQLite
        assert lib.vector_index(Modality.AUDIO, windows=True).size == 6
    assert list(stored_windows(lib_path)) == [f"{media / 'a.wav'}:audio"]


def test_new_window_settings_cut_audio_again_and_leave_images_alone(tmp_path, space):
    media, lib_path = tmp_path / "media", tmp_path / "lib"
    media.mkdir()
    soundfile.write(media / "a.wav", noise_with_tones(20.0, seed=4), RATE, subtype="PCM_16")
    draw_image(media / "p.png", seed=1)
    with bindsearch.open_library(lib_path, space, create=True) as lib:
        assert lib.index([media]).windows == {"audio": 8}
        report = lib.index([media], windows=WindowSettings(4, 4))
        assert report.window_settings_changed and report.windows == {"audio": 5}
        assert (report.updated, report.unchanged) == (1, 1)  # the image is not read again
        assert lib.window_settings == WindowSettings(4, 4)
        assert lib.index([media]).embedded == 0  # remembered
        report = lib.index([media], windows=OFF)
        assert report.windows == {} and lib.info().windows == {}
    with bindsearch.open_library(lib_path) as lib:
        assert lib.window_settings == OFF


def test_a_schema_1_library_is_migrated_and_its_long_audio_cut_on_the_next_run(tmp_path, space):
    media, lib_path = tmp_path / "media", tmp_path / "lib"
    media.mkdir()
    soundfile.write(media / "a.wav", noise_with_tones(20.0, seed=5), RATE, subtype="PCM_16")
    draw_image(media / "p.png", seed=1)
    with bindsearch.open_library(lib_path, space, create=True) as lib:
        lib.index([media], windows=OFF)
    # Back to how schema 1 stored it: no windows table, no window_count column.
    to_schema_3(lib_path)
    with sqlite3.connect(lib_path / "library.sqlite") as db:
        db.execute("DROP TABLE windows")
        db.execute("DROP TABLE tags")  # and nothing of schema 3
        db.execute("ALTER TABLE items DROP COLUMN duration")
        db.execute("ALTER TABLE items DROP COLUMN window_count")
        db.execute("DELETE FROM meta WHERE key = 'windows'")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with bindsearch.open_library(lib_path) as lib:
        assert lib.info().schema_version == SCHEMA_VERSION
        assert len(lib.search(np.ones(lib.dim, np.float32), k=5)) == 2  # everything still found
        report = lib.index([media])
        assert (report.updated, report.unchanged, report.windows) == (1, 1, {"audio": 8})


def test_a_file_that_changes_while_its_windows_are_read_is_reported(tmp_path, space):
    from bindsearch.indexer.pipeline import Task, prepare_task

    path = tmp_path / "a.wav"
    soundfile.write(path, noise_with_tones(20.0, seed=6), RATE, subtype="PCM_16")
    st = os.stat(path)
    task = Task(0, str(path), Modality.AUDIO, None, clips=((0.0, 2.0), (2.0, 4.0)), chunk=0,
                expect=(st.st_size, st.st_mtime_ns))
    good = prepare_task(task, space, set())
    assert good.reason is None and tuple(good.prepared.shape) == (2, 1, 128, 204)
    stale = Task(0, str(path), Modality.AUDIO, None, clips=((0.0, 2.0),), chunk=0,
                 expect=(st.st_size, st.st_mtime_ns - 1))
    assert prepare_task(stale, space, set()).reason == "the file changed while its time windows were read"


# -- searching windows -----------------------------------------------------------------------


def an_hour_of_sounds(path: Path) -> dict[str, float]:
    """An hour of quiet noise with a few distinct six-second sounds; returns when each starts."""
    rng = np.random.default_rng(11)
    n = 3600 * RATE
    signal = 0.02 * rng.standard_normal(n).astype(np.float32)
    t = np.arange(6 * RATE) / RATE
    sounds = {
        "hum": sum(np.sin(2 * np.pi * 150 * h * t) / h for h in range(1, 10)),
        "clicks": (np.mod(t, 0.1) < 0.004) * 1.0,
        "whistle": np.sin(2 * np.pi * 3000 * t + 20 * np.sin(2 * np.pi * 6 * t)),
        "beeps": sum(np.sin(2 * np.pi * 700 * f * t) for f in (1, 1.5, 2.25)) * (np.mod(t, 0.5) < 0.25),
    }
    starts = {}
    for (name, sound), at in zip(sounds.items(), [611.3, 1507.9, 2390.5, 3203.1]):
        i = int(at * RATE)
        signal[i : i + len(sound)] += (0.5 * sound / np.abs(sound).max()).astype(np.float32)
        starts[name] = at
    soundfile.write(path, signal, RATE, subtype="PCM_16")
    return starts


def test_an_excerpt_finds_its_moment_in_an_hour_of_audio(tmp_path):
    """The README's use case: which moment of an hour-long recording sounds like this?"""
    media = tmp_path / "media"
    media.mkdir()
    starts = an_hour_of_sounds(media / "hour.wav")
    write_wav(media / "other.wav", seconds=30.0, freq=330.0)
    env = {**os.environ, "BINDSEARCH_LIBRARY": str(tmp_path / "lib")}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bindsearch.cli", *args], capture_output=True, text=True,
                              env=env, timeout=900)

    indexed = cli("index", str(media), "--space", str(SPACE_FILE), "--json")
    assert indexed.returncode == 0, indexed.stderr
    assert json.loads(indexed.stdout)["windows"] == {"audio": 1798 + 13}  # 1800 clips, 6 s every 2 s

    signal, _ = soundfile.read(media / "hour.wav", dtype="float32")
    best_of = {}
    for name in ("hum", "clicks"):
        # Two seconds from the middle of the sound, on the clip grid.
        cut = 2 * int(starts[name] / 2) + 2
        excerpt = tmp_path / f"{name}.wav"
        soundfile.write(excerpt, signal[cut * RATE : (cut + 2) * RATE], RATE, subtype="PCM_16")
        found = cli("query", "--audio", str(excerpt), "--target", "audio", "-k", "3", "--json")
        assert found.returncode == 0, found.stderr
        hits = json.loads(found.stdout)
        best = best_of[name] = hits[0]
        assert best["path"].endswith("hour.wav"), hits
        assert best["start"] <= cut and cut + 2 <= best["end"], (name, cut, hits)
        assert len({h["path"] for h in hits}) == len(hits)  # one result per file

        listed = json.loads(cli("query", "--audio", str(excerpt), "-T", "audio", "-k", "3", "--windows",
                                 "--json").stdout)
        # The moment first, as one result: the windows around it merged, holding the excerpt; the
        # other results are other moments, none overlapping it.
        assert listed[0]["path"].endswith("hour.wav"), listed
        assert listed[0]["start"] <= cut and cut + 2 <= listed[0]["end"], (name, cut, listed)
        assert listed[0]["end"] - listed[0]["start"] > 6 and listed[0]["score"] == pytest.approx(best["score"])
        assert all(h["end"] <= listed[0]["start"] or h["start"] >= listed[0]["end"]
                   for h in listed[1:] if h["path"] == listed[0]["path"]), (name, listed)

    # Piped, the results are tab-separated: rank, score, calibrated score, modality, time, path.
    line = cli("query", "--audio", str(tmp_path / "hum.wav"), "-T", "audio", "-k", "1").stdout.strip().splitlines()[-1]
    hum = best_of["hum"]
    assert line.split("\t")[4] == f"{format_time(hum['start'])}-{format_time(hum['end'])}", line
    assert line.endswith("hour.wav")
