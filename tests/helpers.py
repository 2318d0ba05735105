"""Helpers the tests share: drawn images, space files, paths of the repository."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
TINY_SPACE_FILE = REPO / "examples" / "tiny-space.json"
EXAMPLE_MEDIA = REPO / "examples" / "media"


def draw_image(path: Path, seed: int, size: tuple[int, int] = (96, 80)) -> Path:
    """A distinct picture per seed: a coloured background with random shapes."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.integers(0, size[0] - 10), rng.integers(0, size[1] - 10)
        x1, y1 = x0 + rng.integers(5, 40), y0 + rng.integers(5, 40)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def copy_examples(dest: Path) -> Path:
    shutil.copytree(EXAMPLE_MEDIA, dest)
    return dest


def write_space(path: Path, **overrides: object) -> Path:
    spec = json.loads(TINY_SPACE_FILE.read_text())
    spec.update(overrides)
    path.write_text(json.dumps(spec))
    return path


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


# Root reads any file whatever its mode, thanks to these two capabilities. A process that uid 0 starts
# through setpriv with them out of its bounding set is still root (it owns root's files) but obeys the
# permission bits: a root-owned file of mode 000 is unreadable to it, the venv and the repository are not.
_DROP_DAC = ("--bounding-set", "-dac_override,-dac_read_search")
_PROBE = """
import sys
import bindsearch
try:
    open(sys.argv[1]).close()
except PermissionError:
    print("denied")
else:
    print("read")
"""


@functools.cache
def _capability_drop() -> tuple[tuple[str, ...], str]:
    """(the command prefix, "") when it works here, else ((), why not)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return (), ("running as root, which reads files whatever their permissions, and setpriv (util-linux) "
                    "is not installed to drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH")
    prefix = (setpriv, *_DROP_DAC)
    with tempfile.TemporaryDirectory() as tmp:
        locked = Path(tmp) / "locked"
        locked.write_text("secret")
        locked.chmod(0)
        try:
            probe = subprocess.run([*prefix, sys.executable, "-c", _PROBE, str(locked)], capture_output=True,
                                   text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return (), f"running as root, and setpriv could not drop CAP_DAC_OVERRIDE: {exc}"
    if probe.returncode != 0 or probe.stdout.strip() != "denied":
        said = (probe.stderr.strip() or probe.stdout.strip()).splitlines()[-1:] or ["no output"]
        return (), ("running as root, and a process started by setpriv without CAP_DAC_OVERRIDE and "
                    f"CAP_DAC_READ_SEARCH still read a file of mode 000 or could not run (exit {probe.returncode}: "
                    f"{said[0]})")
    return prefix, ""


def permission_bits_prefix() -> list[str] | None:
    """How to run a command that must see permission errors: None when not root (run it as it is), else
    the command prefix that drops root's CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH. Skips the calling
    test, with the reason, when root cannot drop them here (no setpriv, or it does not work)."""
    if not running_as_root():
        return None
    prefix, why_not = _capability_drop()
    if not prefix:
        pytest.skip(why_not)
    return list(prefix)


def run_index_cli(prefix: list[str], *args: object) -> tuple[dict, subprocess.CompletedProcess]:
    """``bindsearch index ARGS... --json`` in a new process started through ``prefix`` (the environment is
    this one's: the tests' library, cache and offline settings). Returns its JSON report and the process."""
    done = subprocess.run([*prefix, sys.executable, "-m", "bindsearch.cli", "index", *map(str, args), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"no JSON report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}") from None
    return report, done


# The conformance fixture ships in tests/fixtures; BINDSEARCH_FIXTURES points at another copy of that folder.
FIXTURES = Path(os.environ.get("BINDSEARCH_FIXTURES") or REPO / "tests" / "fixtures")
IMAGEBIND_TINY = FIXTURES / "imagebind-tiny"


def imagebind_fixture_missing() -> str | None:
    """Why the ImageBind conformance fixture cannot be used, or None when it can."""
    needed = ["config.json", "model.pth", "expected.safetensors", "manifest.json", "media"]
    absent = [name for name in needed if not (IMAGEBIND_TINY / name).exists()]
    if absent:
        return (f"ImageBind conformance fixture not found at {IMAGEBIND_TINY} (missing {', '.join(absent)}); "
                "set BINDSEARCH_FIXTURES to the folder that contains imagebind-tiny")
    return None


def write_imagebind_space(path: Path, checkpoint: str | None = None, precision: str | None = None) -> Path:
    """A space file for the fixture's tiny ImageBind checkpoint (or ``checkpoint``: a path or URL)."""
    spec = {
        "model": "imagebind",
        "checkpoint": checkpoint or str(IMAGEBIND_TINY / "model.pth"),
        "config": json.loads((IMAGEBIND_TINY / "config.json").read_text()),
    }
    if precision is not None:
        spec["precision"] = precision
    path.write_text(json.dumps(spec))
    return path


def write_wav(path: Path, seconds: float = 1.0, freq: float = 440.0, rate: int = 16000, channels: int = 1) -> Path:
    """A sine tone (a chirp in the second channel) as 16-bit PCM."""
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    signal = [0.5 * np.sin(2 * np.pi * freq * t)]
    if channels > 1:
        signal += [0.3 * np.sin(2 * np.pi * (freq + 200 * t) * t)] * (channels - 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.stack(signal, axis=1), rate, subtype="PCM_16")
    return path


def write_video(path: Path, seconds: float = 2.0, fps: int = 10, size: tuple[int, int] = (96, 64),
                sound: bool = True) -> Path:
    """An MPEG-4 clip of moving colour bands, with a 440 Hz AAC soundtrack when ``sound``."""
    import fractions

    import av

    width, height = size
    rate = 16000
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=rate) if sound else None
        if audio is not None:
            audio.layout = "mono"
        samples_done = 0
        for i in range(int(seconds * fps)):
            x = (np.arange(width)[None, :] + 7 * i) % 256
            picture = np.stack([np.repeat(x, height, 0), np.full((height, width), 40 * (i % 6)),
                                np.repeat((np.arange(height)[:, None] * 4) % 256, width, 1)], axis=-1)
            frame = av.VideoFrame.from_ndarray(picture.astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, fractions.Fraction(1, fps)
            for packet in video.encode(frame):
                container.mux(packet)
            while audio is not None and samples_done < (i + 1) * rate // fps:
                t = (samples_done + np.arange(1024)) / rate
                chunk = av.AudioFrame.from_ndarray((0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                                   format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = rate, samples_done, fractions.Fraction(1, rate)
                samples_done += 1024
                for packet in audio.encode(chunk):
                    container.mux(packet)
        for stream in [video] + ([audio] if audio is not None else []):
            for packet in stream.encode(None):
                container.mux(packet)
    return path


def write_depth_png(path: Path, seed: int = 0, size: tuple[int, int] = (80, 60)) -> Path:
    """A 16-bit depth map in millimetres: a slanted floor with a box in front."""
    rng = np.random.default_rng(seed)
    width, height = size
    depth = np.linspace(800, 4000, height)[:, None].repeat(width, 1)
    x0, y0 = rng.integers(0, width // 2), rng.integers(0, height // 2)
    depth[y0 : y0 + height // 3, x0 : x0 + width // 3] = rng.integers(500, 1500)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(depth.astype(np.uint16)).save(path)
    return path


def write_thermal_png(path: Path, seed: int = 0, size: tuple[int, int] = (80, 64)) -> Path:
    """An 8-bit thermal image: cool background and a warm blob."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy = rng.integers(10, width - 10), rng.integers(10, height - 10)
    heat = 40 + 200 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 150.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(heat.astype(np.uint8), mode="L").save(path)
    return path


def write_imu_csv(path: Path, seconds: float = 4.0, rate: int = 200, seed: int = 0, header: bool = True) -> Path:
    """Six channels (accelerometer m/s^2, gyroscope rad/s) of a walking-like motion."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    step = 1.8 + rng.random()
    acc = np.stack([0.5 * np.sin(2 * np.pi * step * t), 0.3 * np.cos(2 * np.pi * step * t),
                    9.81 + 1.2 * np.sin(4 * np.pi * step * t)], axis=1)
    gyro = np.stack([0.2 * np.sin(2 * np.pi * step * t + k) for k in range(3)], axis=1)
    data = np.concatenate([acc, gyro], axis=1) + rng.normal(scale=0.02, size=(len(t), 6))
    path.parent.mkdir(parents=True, exist_ok=True)
    head = "acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z" if header else ""
    np.savetxt(path, data, delimiter=",", header=head, comments="", fmt="%.5f")
    return path
