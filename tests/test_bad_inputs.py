"""A corpus of bad and odd inputs, indexed in one run: each file is indexed or reported with a clear one-line reason."""

from __future__ import annotations

import collections
import fractions
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    REPO,
    draw_image,
    permission_bits_prefix,
    run_index_cli,
    write_imu_csv,
    write_video,
    write_wav,
)
from PIL import Image

import bindsearch
from bindsearch.errors import MediaError
from bindsearch.modality import BUILTIN_MODALITIES, Modality

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"


def write_mp3(path: Path, seconds: float = 2.0, rate: int = 16000) -> Path:
    """A 440 Hz tone, MP3 (libmp3lame through PyAV)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate)
        stream.layout = "mono"
        done = 0
        while done < seconds * rate:
            t = (done + np.arange(1152)) / rate
            frame = av.AudioFrame.from_ndarray((0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                               format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, done, fractions.Fraction(1, rate)
            done += 1152
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def faststart(source: Path, dest: Path) -> Path:
    """The same MP4 with its 'moov' header first (as streaming tools write it), so that a prefix cuts the header."""
    import av

    with av.open(str(source)) as inp, av.open(str(dest), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return dest


def keep_prefix(source: Path, dest: Path, fraction: float | None = None, size: int | None = None) -> Path:
    data = source.read_bytes()
    dest.write_bytes(data[: size if size is not None else int(len(data) * fraction)])
    return dest


def huge_png(source: Path, dest: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A small PNG whose IHDR claims ``width`` x ``height`` pixels (CRC fixed, so only the size is wrong)."""
    data = bytearray(source.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    dest.write_bytes(bytes(data))
    return dest


# Each file of the corpus: "ok" (indexed, with a vector) or a fragment of its one-line reason.
# A video is two items (its frames, and its soundtrack as audio): a pair of expectations.
# None: either (a file deleted between the scan and the read may be reported or dropped).
EXPECTED: dict[str, str | tuple[str, str] | None] = {
    "empty.jpg": "empty file (0 bytes)",
    "empty.wav": "empty file (0 bytes)",
    "empty.mp4": ("empty file (0 bytes)", "empty file (0 bytes)"),
    "imu/empty.csv": "empty file (0 bytes)",
    "trunc.jpg": "corrupt or truncated image",
    "trunc.png": "corrupt or truncated image",
    "trunc.wav": "truncated WAV: the header declares 32000 samples",
    "trunc.mp3": "truncated audio: the header declares 3.02 s",
    "trunc.mp4": ("corrupt or truncated video", "corrupt or truncated audio"),
    # moov first, cut inside it: FFmpeg opens it but finds no stream; the soundtrack must fail too, not be skipped.
    "trunc-header.mp4": ("no audio or video stream could be read", "no audio or video stream could be read"),
    "cut.jpg": "truncated JPEG file (only 1 byte)",
    "huge.png": "image is too large (10,000,000,000 pixels; the limit is 178,956,970 pixels)",
    "text.jpg": "content is plain text, not image as the name says",
    "dir.wav/inside.wav": "ok",
    "selfloop.png": "symbolic link loop",
    "dangling.png": "broken symbolic link (its target does not exist)",
    os.fsdecode(b"caf\xe9.png"): "ok",
    "vanishing.png": None,
    "rewritten.png": "content is plain text, not image as the name says",
    "replaced.png": "ok",
    "short.wav": "ok",
    "silent.wav": "ok",
    "six.wav": "ok",
    "imu/nan.csv": "ok",
    "imu/three.csv": "needs 6 channels (accelerometer x, y, z and gyroscope x, y, z), found 3",
    "imu/one.csv": "too short: 1 sample (need at least 2)",
    "depth/tiny.png": "ok",
}


def build_corpus(root: Path, sources: Path) -> None:
    """Every file of EXPECTED under ``root`` (good originals are made in ``sources``)."""
    sources.mkdir(parents=True, exist_ok=True)
    for sub in ["imu", "depth"]:
        (root / sub).mkdir(parents=True, exist_ok=True)

    for name in ["empty.jpg", "empty.wav", "empty.mp4", "imu/empty.csv"]:
        (root / name).write_bytes(b"")

    jpg = draw_image(sources / "good.jpg", seed=1, size=(160, 120))
    png = draw_image(sources / "good.png", seed=2)
    wav = write_wav(sources / "good.wav", seconds=2.0)
    mp3 = write_mp3(sources / "good.mp3", seconds=3.0)
    mp4 = write_video(sources / "good.mp4", seconds=2.0)
    keep_prefix(jpg, root / "trunc.jpg", 0.5)
    keep_prefix(png, root / "trunc.png", 0.5)
    keep_prefix(wav, root / "trunc.wav", 0.5)
    keep_prefix(mp3, root / "trunc.mp3", 0.3)
    keep_prefix(mp4, root / "trunc.mp4", 0.5)
    keep_prefix(faststart(mp4, sources / "faststart.mp4"), root / "trunc-header.mp4", size=300)
    keep_prefix(jpg, root / "cut.jpg", size=1)

    huge_png(png, root / "huge.png")
    (root / "text.jpg").write_text("this is a shopping list, not a picture\neggs\nmilk\n")
    write_wav(root / "dir.wav" / "inside.wav", seconds=1.0, freq=330.0)  # a folder with an audio name

    os.symlink("selfloop.png", root / "selfloop.png")  # a link to itself: ELOOP
    os.symlink("..", root / "imu" / "up")  # a folder loop: each real folder is walked once
    os.symlink(root / "nowhere.png", root / "dangling.png")
    draw_image(root / os.fsdecode(b"caf\xe9.png"), seed=4)  # Latin-1 bytes, not valid UTF-8

    draw_image(root / "vanishing.png", seed=5)  # deleted after the scan (see Saboteur)
    draw_image(root / "rewritten.png", seed=6)  # replaced by text after the scan
    draw_image(root / "replaced.png", seed=7)  # replaced by another picture after the scan

    write_wav(root / "short.wav", seconds=0.01)
    write_wav(root / "silent.wav", seconds=1.0, freq=0.0)  # sin(0) = 0: all silent
    write_wav(root / "six.wav", seconds=0.5, rate=96000, channels=6)

    lines = write_imu_csv(sources / "nan.csv", seconds=2.0).read_text().splitlines()
    for i in range(5, len(lines), 7):  # holes: empty cells and "nan" in every channel
        cells = lines[i].split(",")
        cells[i % 6] = "nan" if i % 2 else ""
        lines[i] = ",".join(cells)
    (root / "imu" / "nan.csv").write_text("\n".join(lines) + "\n")
    rows = "".join(f"{i * 0.1:.1f},{i * 0.2:.1f},9.81\n" for i in range(50))
    (root / "imu" / "three.csv").write_text("x,y,z\n" + rows)
    (root / "imu" / "one.csv").write_text("acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z\n0.1,0.2,9.8,0.01,0.02,0.03\n")

    Image.fromarray(np.array([[1500]], dtype=np.uint16)).save(root / "depth" / "tiny.png")  # one pixel, 1.5 m


class Saboteur(bindsearch.IndexObserver):
    """Changes files after the scan listed them and before they are read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done = False

    def started(self, total: int, by_modality: dict[str, int] | None = None) -> None:
        if self.done:
            return
        self.done = True
        (self.root / "vanishing.png").unlink()
        (self.root / "rewritten.png").write_text("this file was rewritten as text\n")
        draw_image(self.root / "replaced.png", seed=70, size=(120, 90))


def stored(lib: bindsearch.Library) -> dict[tuple[str, Modality], tuple[int, np.ndarray]]:
    """(path, modality) -> (id, vector) of every embedded item."""
    out = {}
    for modality in BUILTIN_MODALITIES:
        ids, vectors = lib.stored_vectors(modality)
        paths = lib.items(ids)
        for i, v in zip(ids, vectors):
            out[(paths[int(i)][0], modality)] = (int(i), v)
    return out


def check_reasons(errors: list) -> None:
    for e in errors:
        assert e.reason and e.reason.strip() == e.reason, e
        assert "\n" not in e.reason and "\r" not in e.reason, e
        assert "Traceback" not in e.reason, e
        # No exception class dumped instead of a reason ("ValueError: ...", "OSError(...)").
        assert not re.search(r"\b[A-Z]\w*(Error|Exception|Warning)\b", e.reason), e


def check_consistent(lib: bindsearch.Library) -> None:
    """The FAISS indexes hold exactly the vectors SQLite holds."""
    for modality in BUILTIN_MODALITIES:
        ids, _ = lib.stored_vectors(modality)
        assert lib.vector_index(modality).size == len(ids), modality


def test_bad_input_corpus(tmp_path: Path) -> None:
    media = tmp_path / "media"
    good = media / "good"
    draw_image(good / "a.png", seed=10)
    draw_image(good / "b.jpg", seed=11)
    write_wav(good / "tone.wav", seconds=1.0)
    write_imu_csv(good / "imu" / "walk.csv", seconds=2.0)
    corpus = media / "bad"

    with bindsearch.open_library(tmp_path / "lib", TINY_IMAGEBIND, create=True) as lib:
        first = lib.index([media])
        assert (first.added, first.failed) == (4, 0)
        before = stored(lib)

        build_corpus(corpus, tmp_path / "sources")
        report = lib.index([media], observer=Saboteur(corpus))

        # The run finished, counted its failures, and left the good items as they were.
        assert not report.interrupted
        assert report.failed == len(report.errors)
        check_reasons(report.errors)
        after = stored(lib)
        for key, (item_id, vector) in before.items():
            assert after[key][0] == item_id, key
            np.testing.assert_array_equal(after[key][1], vector)

        # Every corpus file is indexed or reported as EXPECTED, and nothing else is there.
        reasons = collections.defaultdict(list)
        for e in report.errors:
            reasons[os.path.relpath(e.path, corpus)].append(e.reason)
        # The library records a failure per item (a video's frames and its soundtrack); the report, per file.
        item_reasons = collections.defaultdict(list)
        failed_items = lib.info().failed
        for f in failed_items:
            item_reasons[os.path.relpath(f.path, corpus)].append(f.reason)
        indexed = collections.defaultdict(list)
        for path, modality in after:
            if path.startswith(str(corpus) + os.sep):
                indexed[os.path.relpath(path, corpus)].append(modality)
        assert set(reasons) | set(indexed) <= set(EXPECTED), (dict(reasons), dict(indexed))
        for name, expected in EXPECTED.items():
            if expected is None:
                continue
            if expected == "ok":
                assert name in indexed and name not in reasons, (name, reasons.get(name))
                continue
            wanted = [expected] if isinstance(expected, str) else list(expected)
            assert name not in indexed, name
            got = sorted(item_reasons.get(name, []))
            assert len(got) == len(wanted), (name, got)
            for fragment in wanted:
                assert any(fragment in r for r in got), (name, fragment, got)
            assert len(reasons[name]) == 1 and reasons[name][0] in got, (name, reasons[name])
        assert report.skipped == 0  # the cut MP4's soundtrack fails, it is not taken for a silent video

        # What the run saw of the files changed under it.
        vanished = str(corpus / "vanishing.png")
        assert reasons.get("vanishing.png", ["no such file"])[0].startswith("no such file")
        assert (vanished, Modality.IMAGE) not in after
        assert indexed["dir.wav/inside.wav"] == [Modality.AUDIO]
        np.testing.assert_allclose(after[(str(corpus / "replaced.png"), Modality.IMAGE)][1],
                                   lib.space.embed("image", corpus / "replaced.png"), atol=1e-5)
        assert not any("/up/" in p for p, _ in after) and not any("/up/" in e.path for e in report.errors)
        assert set(indexed["short.wav"] + indexed["silent.wav"] + indexed["six.wav"]) == {Modality.AUDIO}
        assert indexed["imu/nan.csv"] == [Modality.IMU] and indexed["depth/tiny.png"] == [Modality.DEPTH]
        check_consistent(lib)

        # A second run over the same corpus reports the same failures (the deleted file is gone for good).
        again = lib.index([media])
        assert not again.interrupted and again.failed == len(again.errors)
        check_reasons(again.errors)
        pairs = collections.Counter((e.path, e.reason) for e in report.errors if e.path != vanished)
        assert collections.Counter((e.path, e.reason) for e in again.errors) == pairs
        assert again.added == 0 and again.updated == 0
        assert stored(lib).keys() == after.keys()
        item_pairs = collections.Counter((f.path, f.reason) for f in failed_items if f.path != vanished)
        assert collections.Counter((f.path, f.reason) for f in lib.info().failed) == item_pairs
        check_consistent(lib)


def test_unreadable_file(tmp_path: Path) -> None:
    # As root, the run is the real CLI in a process without the capabilities that let root read anything
    # (through setpriv); otherwise it is this process, as is.
    prefix = permission_bits_prefix()
    folder = tmp_path / "media"
    draw_image(folder / "locked.png", seed=1)
    draw_image(folder / "open.png", seed=2)
    os.chmod(folder / "locked.png", 0)
    try:
        if prefix is None:
            with bindsearch.open_library(tmp_path / "lib", TINY_IMAGEBIND, create=True) as lib:
                report = lib.index([folder])
            added, errors = report.added, [(e.path, e.reason) for e in report.errors]
        else:
            json_report, done = run_index_cli(prefix, folder, "--library", tmp_path / "lib", "--space", TINY_IMAGEBIND)
            assert done.returncode == 3, done.stderr  # some files failed, the run went on to the end
            added, errors = json_report["added"], [(e["path"], e["reason"]) for e in json_report["errors"]]
    finally:
        os.chmod(folder / "locked.png", 0o644)
    assert added == 1
    assert [(os.path.basename(path), reason) for path, reason in errors] == [("locked.png", "permission denied")]
    with bindsearch.open_library(tmp_path / "lib") as lib:
        ids, _ = lib.stored_vectors(Modality.IMAGE)
        assert [path for path, _ in lib.items(ids).values()] == [str(folder / "open.png")]


# --- focused checks of the loader fixes the corpus led to -------------------------------------------


def media_reason(load, path: Path) -> str:
    with pytest.raises(MediaError) as info:
        load(str(path))
    return info.value.reason


def test_a_file_cut_within_its_signature_is_called_truncated(tmp_path: Path) -> None:
    from bindsearch.loaders.audio import load_audio
    from bindsearch.loaders.depth import load_depth
    from bindsearch.loaders.image import load_image
    from bindsearch.loaders.thermal import load_thermal

    png = draw_image(tmp_path / "good.png", seed=1).read_bytes()
    jpg = draw_image(tmp_path / "good.jpg", seed=1).read_bytes()
    wav = write_wav(tmp_path / "good.wav", seconds=0.1).read_bytes()
    cases = [  # (loader, name, content, reason): a lone 0xFF byte used to pass for plain text
        (load_image, "a.jpg", jpg[:1], "truncated JPEG file (only 1 byte)"),
        (load_image, "a.png", png[:3], "truncated PNG file (only 3 bytes)"),
        (load_audio, "a.wav", wav[:8], "truncated RIFF (WAV, AVI or WebP) file (only 8 bytes)"),
        (load_depth, "d.png", png[:5], "truncated PNG file (only 5 bytes)"),
        (load_thermal, "t.png", png[:2], "truncated PNG file (only 2 bytes)"),
        # The signature and nothing after it: Pillow cannot identify it, but we know what it was meant to be.
        (load_image, "b.png", png[:8], "corrupt or truncated PNG image (its header cannot be read)"),
        (load_image, "b.jpg", jpg[:20], "corrupt or truncated JPEG image (its header cannot be read)"),
        # Real text stays text, even a letter long.
        (load_image, "x.jpg", b"x", "content is plain text, not image as the name says"),
        (load_image, "hi.png", b"hi\n", "content is plain text, not image as the name says"),
    ]
    for load, name, content, reason in cases:
        (tmp_path / name).write_bytes(content)
        assert media_reason(load, tmp_path / name) == reason, name


def test_huge_image_reason_gives_its_size(tmp_path: Path) -> None:
    from bindsearch.loaders.image import load_image

    png = draw_image(tmp_path / "small.png", seed=1)
    reason = media_reason(load_image, huge_png(png, tmp_path / "huge.png", 20_000, 15_000))
    assert reason == "image is too large (300,000,000 pixels; the limit is 178,956,970 pixels)"


def test_wav_missing_a_few_samples_does_not_say_zero_percent(tmp_path: Path) -> None:
    from bindsearch.loaders.audio import load_audio

    wav = write_wav(tmp_path / "good.wav", seconds=2.0)
    reason = media_reason(load_audio, keep_prefix(wav, tmp_path / "cut.wav", size=wav.stat().st_size - 10))
    assert reason == "truncated WAV: the header declares 32000 samples, the file holds 31995 (5 missing)"


def test_soundtrack_of_an_empty_or_headless_video_fails_instead_of_being_skipped(tmp_path: Path) -> None:
    from bindsearch.loaders.audio import has_audio_stream
    from bindsearch.loaders.video import video_info

    (tmp_path / "empty.mp4").write_bytes(b"")
    assert media_reason(has_audio_stream, tmp_path / "empty.mp4") == "empty file (0 bytes)"
    mp4 = faststart(write_video(tmp_path / "good.mp4", seconds=1.0), tmp_path / "fast.mp4")
    cut = keep_prefix(mp4, tmp_path / "cut.mp4", size=100)
    reason = "corrupt or truncated file (no audio or video stream could be read from it)"
    assert media_reason(has_audio_stream, cut) == reason
    assert media_reason(video_info, cut) == reason
    assert has_audio_stream(str(mp4)) and not has_audio_stream(str(write_video(tmp_path / "mute.mp4", sound=False)))
