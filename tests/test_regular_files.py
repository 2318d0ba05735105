"""A FIFO or a device where a file is expected is refused with one line, never waited on or read without end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, write_wav

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"
BIRDSONG = REPO / "examples" / "media" / "sounds" / "birdsong.wav"
FIFO_REASON = "is a FIFO (named pipe), not a regular file"


def run_cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    """``bindsearch ARGS...`` in a new process; a hang fails the test through the timeout."""
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("flag, name", [("--image", "a.jpg"), ("--audio", "a.wav"), ("--video", "a.mp4"),
                                        ("--depth", "a.depth.png"), ("--thermal", "a.thermal.png"),
                                        ("--imu", "a.imu.csv")])
def test_embed_refuses_a_fifo_input(tmp_path: Path, flag: str, name: str) -> None:
    done = run_cli("embed", flag, fifo(tmp_path / name), "--space", TINY_IMAGEBIND, "--json")
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path / name}: {FIFO_REASON}"


def test_query_refuses_a_fifo_query_file(tmp_path: Path) -> None:
    done = run_cli("query", "--image", fifo(tmp_path / "q.png"), "--space", TINY_IMAGEBIND,
                   "--library", tmp_path / "lib")
    assert done.returncode == 2
    assert done.stderr.strip().endswith(f"q.png: {FIFO_REASON}")


def test_classify_reports_a_fifo_file_and_labels_the_others(tmp_path: Path) -> None:
    done = run_cli("classify", fifo(tmp_path / "a.txt"), BIRDSONG, "--labels", "dog,bird", "--space", TINY_IMAGEBIND,
                   "--json")
    assert done.returncode == 3
    results = {Path(r["path"]).name: r for r in json.loads(done.stdout)}
    assert results["a.txt"]["error"] == FIFO_REASON
    assert results["birdsong.wav"]["error"] is None


@pytest.mark.parametrize("labels_file, reason", [("fifo", FIFO_REASON),
                                                 ("/dev/zero", "is a character device, not a regular file")])
def test_labels_file_must_be_a_regular_file(tmp_path: Path, labels_file: str, reason: str) -> None:
    path = fifo(tmp_path / "labels.txt") if labels_file == "fifo" else Path(labels_file)
    done = run_cli("classify", BIRDSONG, "--labels-file", path, "--space", TINY_IMAGEBIND)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: cannot read labels file {path}: {reason}"


def test_labels_file_size_is_bounded(tmp_path: Path) -> None:
    from bindsearch.classify import MAX_LABELS_FILE_BYTES

    big = tmp_path / "labels.txt"
    big.write_bytes(b"dog\n" * (MAX_LABELS_FILE_BYTES // 4 + 1))
    done = run_cli("classify", BIRDSONG, "--labels-file", big, "--space", TINY_IMAGEBIND)
    assert done.returncode == 2
    reason = f"is larger than {MAX_LABELS_FILE_BYTES:,} bytes"
    assert done.stderr.strip() == f"error: cannot read labels file {big}: {reason}"


def test_space_file_must_be_a_regular_file(tmp_path: Path) -> None:
    done = run_cli("embed", "--text", "a dog", "--space", fifo(tmp_path / "space.json"), "--json")
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: cannot read space file {tmp_path / 'space.json'}: {FIFO_REASON}"


def test_a_fifo_in_place_of_a_vector_file_is_never_waited_on_and_is_replaced(tmp_path: Path) -> None:
    media = tmp_path / "media"
    write_wav(media / "a.wav", seconds=1.0, freq=440)
    write_wav(media / "b.wav", seconds=1.0, freq=880)
    library = tmp_path / "lib"
    assert run_cli("index", media, "--space", TINY_IMAGEBIND, "--library", library).returncode == 0
    vector_file = library / "vectors" / "audio.f32"
    vector_file.unlink()
    fifo(vector_file)
    done = run_cli("query", "--audio", media / "a.wav", "--library", library, "--json")
    assert done.returncode == 0, done.stderr  # answered (with nothing), not blocked on the FIFO
    assert json.loads(done.stdout) == [] and "damaged on disk" in done.stderr
    done = run_cli("index", media, "--library", library, "--json")
    assert done.returncode == 0, done.stderr
    assert f"vector file {vector_file} is a FIFO (named pipe), not a regular file" in done.stderr
    assert vector_file.is_file() and (library / "vectors" / "audio.f32.damaged").is_fifo()
    done = run_cli("query", "--audio", media / "a.wav", "--library", library, "--json")
    assert json.loads(done.stdout)[0]["path"] == str(media / "a.wav")


def test_every_loader_refuses_a_fifo_at_open(tmp_path: Path) -> None:
    """A media file swapped for a FIFO after the scan: each reader checks what it opens."""
    script = """
import json, sys
from bindsearch.errors import MediaError
from bindsearch.indexer.hashing import content_hash
from bindsearch.loaders import audio, depth, image, imu, text, thermal, video
from bindsearch.preprocess import files
calls = {
    "image": lambda p: image.load_image(p + ".png"),
    "audio": lambda p: audio.load_audio(p + ".wav"),
    "audio_info": lambda p: audio.audio_info(p + ".wav"),
    "video": lambda p: video.load_video_clips(p + ".mp4"),
    "text": lambda p: text.load_text(p + ".txt", 4096),
    "depth": lambda p: depth.load_depth(p + ".npy"),
    "depth_npz": lambda p: depth.load_depth(p + ".npz"),
    "thermal": lambda p: thermal.load_thermal(p + ".png"),
    "imu": lambda p: imu.read_imu(p + ".csv"),
    "audio_input": lambda p: files.audio_file_to_input(p + ".wav"),
    "hash": lambda p: content_hash(p + ".png"),
}
out = {}
for name, call in calls.items():
    try:
        call(sys.argv[1])
        out[name] = "read"
    except MediaError as exc:
        out[name] = exc.reason
print(json.dumps(out))
"""
    for ext in (".png", ".wav", ".mp4", ".txt", ".npy", ".npz", ".csv"):
        fifo(tmp_path / f"f{ext}")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "f")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout).values()) == {FIFO_REASON}


def test_a_file_swapped_for_a_fifo_after_its_check_is_still_refused(tmp_path: Path) -> None:
    """Pillow, libsndfile and FFmpeg open a path themselves, after bindsearch has checked it: here the file is
    swapped for a FIFO right after the check, and the decoder's open must still not wait on it."""
    script = """
import json, os, shutil, sys
from bindsearch.errors import MediaError
from bindsearch.loaders import audio, common, image, video

real_check = common.check_content

def check_then_swap(path, expected):
    head = real_check(path, expected)
    os.rename(path, path + ".aside")
    os.mkfifo(path)
    return head

for module in (audio, image, video):
    module.check_content = check_then_swap
folder, clip, sound = sys.argv[1:4]
calls = {
    "image": (".png", lambda p: image.load_image(p)),
    "audio": (".wav", lambda p: audio.load_audio(p)),
    "audio_info": (".wav", lambda p: audio.audio_info(p)),
    "video": (".mp4", lambda p: video.load_video_clips(p)),
}
from PIL import Image
out = {}
for name, (ext, call) in calls.items():
    path = os.path.join(folder, name + ext)
    if ext == ".png":
        Image.new("RGB", (8, 8)).save(path)
    else:
        shutil.copy(clip if ext == ".mp4" else sound, path)
    try:
        call(path)
        out[name] = "read"
    except MediaError as exc:
        out[name] = exc.reason
print(json.dumps(out))
"""
    clip = REPO / "examples" / "media" / "clips" / "bands.mp4"
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path), str(clip), str(BIRDSONG)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == dict.fromkeys(["image", "audio", "audio_info", "video"], FIFO_REASON)


def test_a_decoder_path_names_the_file_that_was_checked(tmp_path: Path) -> None:
    from bindsearch.regular_files import regular_path

    path = tmp_path / "a.bin"
    path.write_bytes(b"checked")
    with regular_path(path) as opened:
        os.rename(path, tmp_path / "aside.bin")
        fifo(path)
        with open(opened, "rb") as f:  # the file that was checked, not the FIFO now at its path
            assert f.read() == b"checked"
    with pytest.raises(OSError, match="FIFO"):
        with regular_path(path):
            pass
