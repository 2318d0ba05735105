"""Thumbnails: one decodable picture per modality, false colour, and the on-disk cache."""

from __future__ import annotations

import fractions
import io
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    EXAMPLE_MEDIA,
    draw_image,
    permission_bits_prefix,
    write_depth_png,
    write_imu_csv,
    write_thermal_png,
    write_video,
    write_wav,
)
from PIL import Image

from bindsearch.errors import MediaError
from bindsearch.modality import Modality
from bindsearch.thumbnails import (
    DEPTH_LUT,
    IRON_LUT,
    Thumbnail,
    ThumbnailCache,
    colour_map,
    make_thumbnail,
    thumbnail_media_type,
)
from bindsearch.thumbnails.audio import log_spectrogram
from bindsearch.thumbnails.image import decode_reduced_jpeg
from bindsearch.thumbnails.imu import envelope
from bindsearch.thumbnails.text import wrap

FORMAT = "WEBP" if thumbnail_media_type() == "image/webp" else "JPEG"


def decoded(thumb: Thumbnail) -> Image.Image:
    assert isinstance(thumb, Thumbnail)
    assert thumb.media_type == thumbnail_media_type()
    img = Image.open(io.BytesIO(thumb.data))
    assert img.format == FORMAT
    img.load()
    return img.convert("RGB")


def mean_colour(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float64).reshape(-1, 3).mean(axis=0)


# --- every modality -------------------------------------------------------------------------------


def sample_files(root: Path) -> dict[str, tuple[Path, Modality]]:
    return {
        "image": (draw_image(root / "a.png", seed=1, size=(640, 400)), Modality.IMAGE),
        "video": (write_video(root / "v.mp4"), Modality.VIDEO),
        "soundtrack": (write_video(root / "s.mp4"), Modality.AUDIO),
        "audio": (write_wav(root / "a.wav", seconds=2.0), Modality.AUDIO),
        "depth": (write_depth_png(root / "depth" / "d.png", size=(800, 600)), Modality.DEPTH),
        "thermal": (write_thermal_png(root / "thermal" / "t.png"), Modality.THERMAL),
        "imu": (write_imu_csv(root / "imu" / "walk.csv"), Modality.IMU),
        "text": (root / "n.txt", Modality.TEXT),
    }


def test_every_modality_gives_a_picture_within_the_size(tmp_path: Path) -> None:
    files = sample_files(tmp_path)
    files["text"][0].write_text("A first line\nand a second one, long enough to be wrapped on a small card\n")
    for name, (path, modality) in files.items():
        img = decoded(make_thumbnail(str(path), modality, size=200))
        assert max(img.size) <= 200, name
        assert min(img.size) >= 1, name
        assert np.asarray(img).std() > 3, f"{name}: a blank picture"
    # Drawn pictures have the plot size; a large depth map is shrunk to the longest side, aspect kept.
    assert decoded(make_thumbnail(str(files["imu"][0]), Modality.IMU, size=320)).size == (320, 180)
    assert decoded(make_thumbnail(str(files["audio"][0]), Modality.AUDIO, size=320)).size == (320, 180)
    assert decoded(make_thumbnail(str(files["depth"][0]), Modality.DEPTH, size=320)).size == (320, 240)


def test_example_media(tmp_path: Path) -> None:
    cases = [("cat.jpg", Modality.IMAGE), ("clips/bands.mp4", Modality.VIDEO), ("clips/bands.mp4", Modality.AUDIO),
             ("sounds/speech.wav", Modality.AUDIO), ("depth/room.png", Modality.DEPTH),
             ("thermal/person.png", Modality.THERMAL), ("imu/walk.csv", Modality.IMU),
             ("notes/launch.txt", Modality.TEXT)]
    for name, modality in cases:
        img = decoded(make_thumbnail(str(EXAMPLE_MEDIA / name), modality))
        assert max(img.size) <= 320, name


def test_image_keeps_its_aspect_and_small_ones_are_not_enlarged(tmp_path: Path) -> None:
    wide = draw_image(tmp_path / "wide.png", seed=2, size=(1000, 250))
    assert decoded(make_thumbnail(str(wide), Modality.IMAGE, size=320)).size == (320, 80)
    small = draw_image(tmp_path / "small.png", seed=3, size=(96, 80))
    assert decoded(make_thumbnail(str(small), Modality.IMAGE, size=320)).size == (96, 80)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Left half red, right half blue, stored landscape; orientation 6 means "turn 90 degrees clockwise to view".
    pixels = np.zeros((50, 100, 3), dtype=np.uint8)
    pixels[:, :50] = (220, 30, 30)
    pixels[:, 50:] = (30, 30, 220)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "turned.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    img = decoded(make_thumbnail(str(path), Modality.IMAGE, size=40))
    assert img.size == (20, 40)
    top, bottom = mean_colour(img.crop((0, 0, 20, 15))), mean_colour(img.crop((0, 25, 20, 40)))
    # Turned clockwise, the left (red) half ends up on top.
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]


def test_a_large_jpeg_is_decoded_at_reduced_scale(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.open(EXAMPLE_MEDIA / "astronaut.jpg").convert("RGB").resize((4000, 3000)).save(path, quality=90)
    assert decode_reduced_jpeg(str(path), 320).size == (500, 375)  # decoded at 1/8 scale, still over 320 a side
    img = decoded(make_thumbnail(str(path), Modality.IMAGE))
    assert img.size == (320, 240)


# --- video ---------------------------------------------------------------------------------------


def frame_colour(i: int) -> tuple[int, int, int]:
    return (20 + 9 * i) % 256, 200 - 3 * i, 60 + (37 * i) % 150


def write_counting_video(path: Path, frames: int = 50, fps: int = 10, gop: int = 12) -> Path:
    """Plain frames whose colour is a function of the frame number, keyframes every ``gop`` frames."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.gop_size = gop
        stream.options = {"qscale": "2"}
        for i in range(frames):
            picture = np.zeros((48, 64, 3), dtype=np.uint8)
            picture[:] = frame_colour(i)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = i, fractions.Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def test_video_frame_at_a_time(tmp_path: Path) -> None:
    path = write_counting_video(tmp_path / "count.mp4")
    for at, index in [(0.0, 0), (3.3, 33), (1.25, 13), (4.9, 49), (60.0, 49)]:
        colour = mean_colour(decoded(make_thumbnail(str(path), Modality.VIDEO, at=at)))
        assert np.abs(colour - frame_colour(index)).max() < 12, (at, colour, frame_colour(index))
    # Without a time: 10 % into the 5 s video, frame 5.
    colour = mean_colour(decoded(make_thumbnail(str(path), Modality.VIDEO)))
    assert np.abs(colour - frame_colour(5)).max() < 12


def test_video_frames_differ_over_time(tmp_path: Path) -> None:
    path = write_video(tmp_path / "bands.mp4", seconds=2.0, fps=10)
    first = np.asarray(decoded(make_thumbnail(str(path), Modality.VIDEO, at=0.0)), dtype=np.float64)
    later = np.asarray(decoded(make_thumbnail(str(path), Modality.VIDEO, at=0.3)), dtype=np.float64)
    assert first.shape == later.shape == (64, 96, 3)
    # write_video's green channel is 40 x (frame % 6): 0 at frame 0, 120 at frame 3.
    assert first[..., 1].mean() < 25 and abs(later[..., 1].mean() - 120) < 25


# --- colour ----------------------------------------------------------------------------------------


def reference_colour_map(values: np.ndarray, lut: np.ndarray) -> np.ndarray:
    finite = [float(v) for v in values.ravel() if np.isfinite(v)]
    lo, hi = np.percentile(finite, 2), np.percentile(finite, 98)
    out = np.zeros((*values.shape, 3), dtype=np.uint8)
    for y in range(values.shape[0]):
        for x in range(values.shape[1]):
            v = float(values[y, x])
            if not np.isfinite(v):
                index = 0
            elif hi <= lo:
                index = 128
            else:
                index = int(min(max((v - lo) / (hi - lo), 0.0), 1.0) * 255 + 0.5)
            out[y, x] = lut[index]
    return out


def test_colour_map_matches_a_per_pixel_reference() -> None:
    rng = np.random.default_rng(4)
    values = rng.normal(size=(13, 17)) * 50 + 3
    values[0, 0], values[5, 5] = 1e6, -1e6  # outliers beyond the percentiles take the end colours
    values[2, 3], values[4, 1] = np.nan, np.inf
    for lut in (DEPTH_LUT, IRON_LUT):
        out = colour_map(values, lut)
        assert out.shape == (13, 17, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(out, reference_colour_map(values, lut))
    assert (colour_map(values, IRON_LUT)[0, 0] == IRON_LUT[255]).all()
    assert (colour_map(values, IRON_LUT)[5, 5] == IRON_LUT[0]).all()


def test_colour_map_constant_and_empty_maps() -> None:
    constant = np.full((4, 5), 7.5)
    constant[1, 1] = np.nan
    out = colour_map(constant, DEPTH_LUT)
    assert (out[0, 0] == DEPTH_LUT[128]).all() and (out[1, 1] == DEPTH_LUT[0]).all()
    assert (colour_map(np.full((3, 3), np.nan), IRON_LUT) == IRON_LUT[0]).all()
    huge = np.array([[-1.7e308, 1.7e308], [0.0, 1.0]])
    assert colour_map(huge, IRON_LUT).shape == (2, 2, 3)  # no overflow to NaN
    limited = colour_map(np.array([[0.0, 5.0, 10.0, 20.0]]), IRON_LUT, limits=(0.0, 10.0))
    np.testing.assert_array_equal(limited[0], IRON_LUT[[0, 128, 255, 255]])


def test_colour_map_refuses_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="2-D"):
        colour_map(np.zeros((2, 3, 4)), IRON_LUT)
    with pytest.raises(ValueError, match="2-D"):
        colour_map(np.zeros(5), IRON_LUT)
    with pytest.raises(ValueError, match="256, 3"):
        colour_map(np.zeros((2, 2)), IRON_LUT[:100])
    with pytest.raises(ValueError, match="uint8"):
        colour_map(np.zeros((2, 2)), IRON_LUT.astype(np.float64))


def test_palettes_grow_steadily_brighter() -> None:
    for lut in (DEPTH_LUT, IRON_LUT):
        luma = lut.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])
        assert (np.diff(luma) >= -0.5).all()
        assert luma[-1] - luma[0] > 150
    assert tuple(IRON_LUT[0]) == (0, 0, 0) and tuple(IRON_LUT[255]) == (255, 255, 255)
    assert DEPTH_LUT[0, 2] > DEPTH_LUT[0, 0] and DEPTH_LUT[255, 0] > DEPTH_LUT[255, 2]  # blue far, yellow near
    with pytest.raises(ValueError):
        DEPTH_LUT[0] = 0  # shared tables are read-only


def test_depth_is_coloured_by_nearness(tmp_path: Path) -> None:
    depth = np.full((60, 80), 4000, dtype=np.uint16)  # 4 m
    depth[:, 40:] = 800  # right half 0.8 m: near
    depth[:10, :10] = 0  # unmeasured
    path = tmp_path / "depth" / "d.png"
    path.parent.mkdir()
    Image.fromarray(depth).save(path)
    img = np.asarray(decoded(make_thumbnail(str(path), Modality.DEPTH)), dtype=np.float64)
    far, near = img[30, 20], img[30, 60]
    assert near.sum() > far.sum() + 200  # yellow near, dark blue far
    assert img[2, 2].sum() < far.sum() + 30


# --- audio, IMU, text ----------------------------------------------------------------------------------


def test_log_spectrogram_peaks_at_the_tone() -> None:
    rate, n_fft = 16000, 512
    t = np.arange(rate) / rate
    db = log_spectrogram(np.sin(2 * np.pi * 1000 * t), n_fft, 128)
    assert db.shape == (n_fft // 2 + 1, 1 + (rate - n_fft) // 128)
    assert abs(int(np.argmax(db.mean(axis=1))) - 1000 * n_fft / rate) <= 1
    assert log_spectrogram(np.zeros(10), 64, 16).shape == (33, 1)  # shorter than a window: one frame
    with pytest.raises(ValueError):
        log_spectrogram(np.zeros((2, 100)), 64, 16)


def test_spectrogram_shows_pitch_and_the_time_asked_for(tmp_path: Path) -> None:
    def brightest_row(path: Path, at: float | None = None) -> int:
        img = np.asarray(decoded(make_thumbnail(str(path), Modality.AUDIO, at=at)).convert("L"), dtype=np.float64)
        return int(np.argmax(img.mean(axis=1)))

    low, high = write_wav(tmp_path / "low.wav", freq=300.0), write_wav(tmp_path / "high.wav", freq=4000.0)
    assert brightest_row(high) < brightest_row(low) - 20  # higher pitch is higher up
    # 3 s of silence then a tone: from 3 s on the picture is bright, from the start it begins black.
    import soundfile

    rate = 16000
    signal = np.concatenate([np.zeros(3 * rate), 0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * rate) / rate)])
    soundfile.write(str(tmp_path / "late.wav"), signal, rate, subtype="PCM_16")
    whole = np.asarray(decoded(make_thumbnail(str(tmp_path / "late.wav"), Modality.AUDIO)).convert("L"))
    late = np.asarray(decoded(make_thumbnail(str(tmp_path / "late.wav"), Modality.AUDIO, at=3.0)).convert("L"))
    assert whole[:, :20].max() < 40 and late[:, :20].max() > 150
    # A time past the end shows the start instead of failing.
    decoded(make_thumbnail(str(tmp_path / "late.wav"), Modality.AUDIO, at=100.0))


def test_silence_is_black(tmp_path: Path) -> None:
    import soundfile

    soundfile.write(str(tmp_path / "quiet.wav"), np.zeros(16000), 16000, subtype="PCM_16")
    img = np.asarray(decoded(make_thumbnail(str(tmp_path / "quiet.wav"), Modality.AUDIO)))
    assert img.max() < 30


def test_envelope_keeps_spikes_of_long_series() -> None:
    times = np.arange(100_000) / 200.0
    values = np.zeros(times.size)
    values[54_321] = 9.0
    xs, ys = envelope(times, values, 300)
    assert len(xs) <= 2 * 301 and ys.max() == 9.0
    short_x, _ = envelope(times[:50], values[:50], 300)
    assert len(short_x) == 50 and short_x[0] == 0 and short_x[-1] == 300


def test_imu_plot_draws_each_panel(tmp_path: Path) -> None:
    path = write_imu_csv(tmp_path / "imu" / "walk.csv", seconds=30.0)
    img = np.asarray(decoded(make_thumbnail(str(path), Modality.IMU)), dtype=np.int32)
    red = (img[..., 0] > 150) & (img[..., 1] < 120) & (img[..., 2] < 120)
    blue = (img[..., 2] > 150) & (img[..., 0] < 120)
    for rows in (slice(0, 90), slice(90, 180)):  # accelerometer above, gyroscope below
        assert red[rows].sum() > 50 and blue[rows].sum() > 50
    whole = make_thumbnail(str(path), Modality.IMU)
    assert make_thumbnail(str(path), Modality.IMU, at=10.0).data != whole.data  # a 10 s span, not all 30 s


def test_text_card_and_wrapping(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    path.write_bytes("Caf\xe9 cr\xe8me\n".encode("cp1252") * 3)
    card = np.asarray(decoded(make_thumbnail(str(path), Modality.TEXT)).convert("L"))
    assert card.min() < 120 and np.median(card) > 200  # dark ink on a light card
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    decoded(make_thumbnail(str(empty), Modality.TEXT))
    lines = wrap("one two three four\n\nsupercalifragilistic", len, 9, 10)
    assert lines == ["one two", "three", "four", "", "supercali", "fragilist", "ic"]
    assert len(wrap("word " * 1000, len, 20, 4)) == 4


# --- bad files -----------------------------------------------------------------------------------------


def corrupt_files(root: Path) -> list[tuple[Path, Modality]]:
    files = sample_files(root)
    files["text"][0].write_text("hello\n")
    out = []
    for name, (path, modality) in files.items():
        data = path.read_bytes()
        bad = root / "bad" / modality.value / f"{name}{path.suffix}"
        bad.parent.mkdir(parents=True, exist_ok=True)
        if modality is Modality.TEXT:
            bad.write_bytes(b"\x00\x01\x02\xff" * 64)
        elif modality is Modality.IMU:
            bad.write_text("acc_x,acc_y\nnot,numbers\n")
        else:
            bad.write_bytes(data[: max(16, len(data) // 10)] + b"\x00garbage" * 10)
        out.append((bad, modality))
        if modality is Modality.TEXT:
            continue  # an empty text file is a blank card (see test_text_card_and_wrapping)
        cut = root / "bad" / modality.value / f"{name}-empty{path.suffix}"
        cut.write_bytes(b"")
        out.append((cut, modality))
    # A JPEG cut short (the reduced-scale decode's path) and a video cut inside its frames.
    photo = root / "photo.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (600, 800, 3), dtype=np.uint8)).save(photo)
    (root / "bad" / "cut.jpg").write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
    out.append((root / "bad" / "cut.jpg", Modality.IMAGE))
    long_video = write_video(root / "long.mp4", seconds=6.0, sound=False).read_bytes()
    (root / "bad" / "cut.mp4").write_bytes(long_video[: len(long_video) // 3])
    out.append((root / "bad" / "cut.mp4", Modality.VIDEO))
    out.append((root / "bad" / "missing.jpg", Modality.IMAGE))
    return out


def test_bad_files_raise_one_line_media_errors(tmp_path: Path) -> None:
    for path, modality in corrupt_files(tmp_path):
        with pytest.raises(MediaError) as caught:
            make_thumbnail(str(path), modality)
        message = str(caught.value)
        assert caught.value.path == str(path) and str(path) in message, message
        assert "\n" not in message and caught.value.reason, message


def test_bad_arguments_are_value_errors(tmp_path: Path) -> None:
    path = draw_image(tmp_path / "a.png", seed=0)
    for size in (0, 5, 100_000):
        with pytest.raises(ValueError):
            make_thumbnail(str(path), Modality.IMAGE, size=size)
    with pytest.raises(ValueError):
        make_thumbnail(str(path), Modality.VIDEO, at=-1.0)


# --- cache ----------------------------------------------------------------------------------------------


def spoil_keeping_stat(path: Path) -> None:
    """Replace the content by garbage of the same size and put the mtime back: a re-make would fail."""
    st = path.stat()
    path.write_bytes(b"\x00" * st.st_size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_cache_hit_reads_the_stored_picture(tmp_path: Path) -> None:
    source = draw_image(tmp_path / "media" / "a.jpg", seed=5, size=(300, 200))
    cache = ThumbnailCache(tmp_path / "cache")
    first = cache.get(300, str(source), Modality.IMAGE, None)
    stored = list((tmp_path / "cache").rglob("*"))
    files = [p for p in stored if p.is_file()]
    assert len(files) == 1 and files[0].parent.name == f"{300 % 256:02x}" and files[0].name.startswith("300-")
    assert files[0].read_bytes() == first.data and files[0].suffix == "." + first.extension
    spoil_keeping_stat(source)
    with pytest.raises(MediaError):
        make_thumbnail(str(source), Modality.IMAGE)  # proof that the hit below is not a re-make
    assert cache.get(300, str(source), Modality.IMAGE, None) == first
    # Other sizes and times are other pictures, and must be made (so fail now).
    for at, size in [(None, 200), (1.0, 320)]:
        with pytest.raises(MediaError):
            cache.get(300, str(source), Modality.IMAGE, at, size)


def test_cache_key_rounds_the_time(tmp_path: Path) -> None:
    source = write_counting_video(tmp_path / "count.mp4")
    cache = ThumbnailCache(tmp_path / "cache")
    st = source.stat()
    key = lambda at: cache.path_for(1, st, Modality.VIDEO, at)  # noqa: E731
    assert key(3.31) == key(3.34) != key(3.36)
    assert key(0.0) != key(None)
    # The same mtime with another length is another version of the file.
    longer = tmp_path / "longer.mp4"
    longer.write_bytes(source.read_bytes() + b"\0")
    os.utime(longer, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.path_for(1, longer.stat(), Modality.VIDEO, 0.0) != key(0.0)
    assert key(1.0) != cache.path_for(2, st, Modality.VIDEO, 1.0) != cache.path_for(1, st, Modality.VIDEO, 1.0, 200)


def test_a_changed_file_gets_a_new_picture(tmp_path: Path) -> None:
    # BMP: another picture of the same size is a file of the same length, so only the mtime tells.
    source = draw_image(tmp_path / "a.bmp", seed=1)
    length = source.stat().st_size
    cache = ThumbnailCache(tmp_path / "cache")
    old = cache.get(7, str(source), Modality.IMAGE, None)
    other_size = cache.get(7, str(source), Modality.IMAGE, None, 64)
    assert len(list((tmp_path / "cache").rglob("7-*"))) == 2
    st = source.stat()
    draw_image(source, seed=2)
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert source.stat().st_size == length
    new = cache.get(7, str(source), Modality.IMAGE, None)
    assert new.data != old.data and new.data != other_size.data
    assert new == make_thumbnail(str(source), Modality.IMAGE)
    # The pictures of the old file are gone; only the new one is left.
    assert [p.read_bytes() for p in (tmp_path / "cache").rglob("7-*")] == [new.data]


def test_a_gone_file_is_a_media_error(tmp_path: Path) -> None:
    source = draw_image(tmp_path / "a.png", seed=1)
    cache = ThumbnailCache(tmp_path / "cache")
    cache.get(1, str(source), Modality.IMAGE, None)
    source.unlink()
    with pytest.raises(MediaError, match="the file is gone") as caught:
        cache.get(1, str(source), Modality.IMAGE, None)
    assert caught.value.path == str(source)


def test_an_unwritable_cache_still_serves_pictures(tmp_path: Path) -> None:
    source = draw_image(tmp_path / "a.png", seed=1)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    thumb = ThumbnailCache(blocker / "cache").get(1, str(source), Modality.IMAGE, None)
    assert thumb == make_thumbnail(str(source), Modality.IMAGE)


_READ_ONLY_GET = """
import sys
from bindsearch.modality import Modality
from bindsearch.thumbnails import ThumbnailCache
sys.stdout.write(ThumbnailCache(sys.argv[1]).get(1, sys.argv[2], Modality.IMAGE, None).data.hex())
"""


def test_a_read_only_cache_folder_still_serves_pictures(tmp_path: Path) -> None:
    # Root writes into a folder of mode 0500; the prefix runs the get without that power.
    prefix = permission_bits_prefix() or []
    source = draw_image(tmp_path / "a.png", seed=1)
    folder = tmp_path / "cache"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", _READ_ONLY_GET, str(folder), str(source)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert bytes.fromhex(done.stdout) == make_thumbnail(str(source), Modality.IMAGE).data
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(stat.S_IRWXU)


def test_concurrent_gets_see_whole_pictures(tmp_path: Path) -> None:
    source = draw_image(tmp_path / "a.png", seed=9, size=(800, 600))
    expected = make_thumbnail(str(source), Modality.IMAGE)
    cache = ThumbnailCache(tmp_path / "cache")
    results: list[bytes] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                results.append(cache.get(3, str(source), Modality.IMAGE, None).data)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 40 and set(results) == {expected.data}
    assert [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()] == [
        cache.path_for(3, source.stat(), Modality.IMAGE, None).name
    ]
