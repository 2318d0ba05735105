"""Small files whose headers claim huge work are refused or streamed, and float audio beyond full scale is rescaled.

The memory tests run the load in a fresh process whose address space is
capped a few hundred megabytes above what it holds after its imports, so a
blow-up fails there (MemoryError) instead of eating the machine.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from helpers import REPO, write_video, write_wav
from PIL import Image

from bindsearch.errors import MediaError
from bindsearch.loaders.audio import MAX_SAMPLE_RATE, load_audio, within_full_scale
from bindsearch.loaders.image import load_image
from bindsearch.loaders.video import video_info
from bindsearch.preprocess.files import audio_file_to_input
from bindsearch.preprocess.image import MAX_ASPECT_RATIO

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"

_BOUNDED = """
import json, resource, sys
from bindsearch.errors import MediaError
from bindsearch.preprocess import files
from bindsearch.loaders.depth import load_depth
from bindsearch.loaders.thermal import load_thermal
import bindsearch.loaders.image, bindsearch.loaders.video, bindsearch.preprocess.video, bindsearch.preprocess.image
with open("/proc/self/status") as f:
    held = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
headroom = int(sys.argv[1]) << 20
resource.setrlimit(resource.RLIMIT_AS, (held + headroom, resource.RLIM_INFINITY))
out = {}
for kind, path in zip(sys.argv[2::2], sys.argv[3::2]):
    load = {"audio": files.audio_file_to_input, "image": files.image_file_to_input,
            "video": files.video_file_to_input, "depth": load_depth, "thermal": load_thermal}[kind]
    try:
        out[path] = list(load(path).shape)
    except MediaError as exc:
        out[path] = exc.reason
print(json.dumps(out))
"""


def load_bounded(headroom_mb: int, *files: tuple[str, Path]) -> dict[str, object]:
    """Model input shape (or the MediaError reason) of each (kind, path), loaded under the memory cap."""
    args = [str(a) for kind, path in files for a in (kind, path)]
    done = subprocess.run([sys.executable, "-c", _BOUNDED, str(headroom_mb), *args], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {Path(p).name: v for p, v in json.loads(done.stdout).items()}


def set_wav_rate(path: Path, rate: int) -> Path:
    """Rewrite a PCM WAV's header to claim ``rate`` (its samples are left as they are)."""
    data = bytearray(path.read_bytes())
    channels, bits = struct.unpack("<H", data[22:24])[0], struct.unpack("<H", data[34:36])[0]
    data[24:32] = struct.pack("<II", rate, rate * channels * bits // 8)
    path.write_bytes(bytes(data))
    return path


# --- aspect ratio -------------------------------------------------------------------------------------


def test_elongated_images_are_refused_from_the_header(tmp_path: Path) -> None:
    strip = tmp_path / "strip.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20000, 1, 3), dtype=np.uint8)).save(strip)
    with pytest.raises(MediaError) as caught:
        load_image(str(strip))
    assert caught.value.reason == (f"image is too elongated (1 x 20000 pixels, 20000:1; the limit is "
                                   f"{MAX_ASPECT_RATIO}:1, since the shorter side is scaled to 224)")


def test_depth_and_thermal_of_any_shape_stay_bounded(tmp_path: Path) -> None:
    """Their transforms compute only the 224 x 224 crop, so a 1 x 20000 strip costs no more memory."""
    Image.fromarray(np.full((20000, 1), 1500, dtype=np.uint16)).save(tmp_path / "strip.depth.png")
    Image.fromarray(np.full((1, 20000), 100, dtype=np.uint8)).save(tmp_path / "strip.thermal.png")
    done = load_bounded(300, ("depth", tmp_path / "strip.depth.png"), ("thermal", tmp_path / "strip.thermal.png"))
    assert done == {"strip.depth.png": [1, 224, 224], "strip.thermal.png": [1, 224, 224]}


def test_images_at_the_aspect_limit_load(tmp_path: Path) -> None:
    at_limit = tmp_path / "at-limit.png"
    Image.fromarray(np.zeros((3 * MAX_ASPECT_RATIO, 3, 3), dtype=np.uint8)).save(at_limit)
    assert load_image(str(at_limit)).size == (3, 3 * MAX_ASPECT_RATIO)


def test_elongated_video_is_refused_before_decoding(tmp_path: Path) -> None:
    video = write_video(tmp_path / "strip.mp4", seconds=1.0, size=(4000, 2), sound=False)
    with pytest.raises(MediaError) as caught:
        video_info(str(video))
    assert caught.value.reason.startswith("video frame is too elongated (4000 x 2 pixels, 2000:1")
    done = load_bounded(400, ("video", video))
    assert done["strip.mp4"].startswith("video frame is too elongated")


# --- sample rates and lengths ---------------------------------------------------------------------------


def test_a_forged_sample_rate_is_refused_and_a_high_real_one_is_bounded(tmp_path: Path) -> None:
    noise = (np.random.default_rng(0).standard_normal(100_000) * 0.1).astype(np.float32)
    for name, rate in [("forged.wav", 10_000_001), ("odd-high.wav", MAX_SAMPLE_RATE - 1)]:
        soundfile.write(str(tmp_path / name), noise, 16000, subtype="PCM_16")
        set_wav_rate(tmp_path / name, rate)
    with pytest.raises(MediaError) as caught:
        load_audio(str(tmp_path / "forged.wav"))
    assert caught.value.reason == "sample rate 10,000,001 Hz is above the 768,000 Hz any recorder uses"
    # 767,999 Hz shares no factor with 16 kHz: the largest resampling filter a file can ask for.
    done = load_bounded(400, ("audio", tmp_path / "forged.wav"), ("audio", tmp_path / "odd-high.wav"))
    assert done == {"forged.wav": "sample rate 10,000,001 Hz is above the 768,000 Hz any recorder uses",
                    "odd-high.wav": [3, 1, 128, 204]}


def test_many_channels_at_a_high_rate_are_decoded_around_the_clips(tmp_path: Path) -> None:
    """40 s of 8-channel 192 kHz is 61 million samples (490 MB decoded whole): only the clips are decoded."""
    path = tmp_path / "array.flac"
    rate, channels, seconds = 192_000, 8, 40
    with soundfile.SoundFile(str(path), "w", rate, channels, subtype="PCM_16") as f:
        for start in range(0, seconds * rate, rate):
            t = (start + np.arange(rate)) / rate
            f.write(np.repeat((0.3 * np.sin(2 * np.pi * 440 * t))[:, None], channels, axis=1))
    done = load_bounded(300, ("audio", path))
    assert done == {"array.flac": [3, 1, 128, 204]}


def test_decoding_around_the_clips_matches_a_whole_decode(tmp_path: Path) -> None:
    # 12 s: the clips do not overlap, so the reference's shared-buffer quirk has nothing to act on.
    path = write_wav(tmp_path / "four.wav", seconds=12.0, rate=48000, channels=4)
    whole = audio_file_to_input(str(path))
    clipped = audio_file_to_input(str(path), full_decode_limit_samples=10_000)
    assert (whole - clipped).abs().max().item() < 1e-5


def torch_allclose(a, b) -> bool:
    import torch

    return bool(torch.allclose(a, b, atol=1e-5, rtol=0))


def test_max_samples_bounds_a_decode_without_a_known_length(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", seconds=2.0, channels=2)
    with pytest.raises(MediaError) as caught:
        load_audio(str(path), max_samples=10_000)
    assert caught.value.reason == "audio too long to decode whole (over 10,000 samples, all channels counted)"
    assert load_audio(str(path), max_samples=64_000)[0].shape == (2, 32_000)


# --- float audio beyond full scale ------------------------------------------------------------------


def test_within_full_scale_divides_by_the_peak_only_above_one() -> None:
    inside = np.array([[0.5, -1.0, 0.25]], dtype=np.float32)
    assert within_full_scale(inside) is inside
    loud = np.array([[2.0, -8.0, 4.0]], dtype=np.float32)
    np.testing.assert_array_equal(within_full_scale(loud), [[0.25, -1.0, 0.5]])


def test_float_audio_far_beyond_full_scale_embeds_as_its_waveform(tmp_path: Path) -> None:
    """randn * 1e20 overflowed the filterbank (all-NaN embedding); now it is the same noise at peak 1."""
    import bindsearch

    huge = (np.random.default_rng(0).standard_normal(48000) * 1e20).astype(np.float32)
    soundfile.write(str(tmp_path / "huge.wav"), huge, 16000, subtype="FLOAT")
    soundfile.write(str(tmp_path / "unit.wav"), huge / np.abs(huge).max(), 16000, subtype="FLOAT")
    huge, unit = audio_file_to_input(str(tmp_path / "huge.wav")), audio_file_to_input(str(tmp_path / "unit.wav"))
    assert bool(huge.isfinite().all())
    assert torch_allclose(huge, unit)
    space = bindsearch.load_space(str(TINY_IMAGEBIND))
    vector = space.embed("audio", tmp_path / "huge.wav")
    assert np.isfinite(vector).all() and abs(np.linalg.norm(vector) - 1) < 1e-5
