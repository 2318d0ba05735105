"""The indexing progress display: a phase line with a spinner, then one bar per modality."""

from __future__ import annotations

import io
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import time

import pytest
from bindsearch.cli.progress import RichIndexProgress
from helpers import REPO
from rich.console import Console

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, record=True, width=100)


def snapshot(progress: RichIndexProgress) -> list[str]:
    """The lines the display would draw now (the live display redraws the same thing)."""
    console = terminal()
    console.print(progress)
    return [line.rstrip() for line in console.export_text().splitlines()]


def bar_line(lines: list[str], modality: str) -> str:
    found = [line for line in lines if line.split()[:1] == [modality]]
    assert len(found) == 1, lines
    return found[0]


def test_phase_line_has_a_spinner_before_any_bar():
    progress = RichIndexProgress(console=terminal())
    (line,) = snapshot(progress)
    assert line[0] in _SPINNER_FRAMES and line[1:].strip() == "scanning"

    progress.started(1000, {"image": 700, "audio": 300})
    progress.phase("loading model")  # long, and nothing moves but the spinner
    lines = snapshot(progress)
    assert lines[0][0] in _SPINNER_FRAMES
    assert "loading model" in lines[0] and "0/1000 files" in lines[0]


def test_one_bar_per_modality_with_its_counts():
    progress = RichIndexProgress(console=terminal())
    progress.phase("scanning")
    progress.started(1000, {"image": 700, "audio": 300, "video": 0})
    progress.phase("reading files")
    for _ in range(350):
        progress.advanced(1, "image")  # reused files come one at a time
    progress.phase("embedding")
    progress.advanced(32, "audio")  # embedded ones a batch at a time
    progress.advanced(68, "audio")

    lines = snapshot(progress)
    assert len(lines) == 3, lines  # the phase, image, audio: no line for video's 0 files
    assert "embedding" in lines[0] and "450/1000 files" in lines[0]
    assert re.search(r"\b350/700\b", bar_line(lines, "image"))
    assert re.search(r"\b100/300\b", bar_line(lines, "audio"))
    assert "files/s" not in bar_line(lines, "image")  # all within milliseconds: too soon to tell a rate
    assert not any("video" in line for line in lines)


def test_live_display_draws_on_the_given_console():
    console = terminal()
    with RichIndexProgress(console=console) as progress:
        progress.started(4, {"text": 3, "depth": 1, "imu": 0})
        progress.phase("embedding")
        progress.advanced(3, "text")
        progress.advanced(1, "depth")
        progress.phase("saving")
    drawn = console.export_text()  # every frame drawn, the last one included
    assert re.search(r"text +\S+ +3/3", drawn)
    assert re.search(r"depth +\S+ +1/1", drawn)
    assert "saving  4/4 files" in drawn
    assert "imu" not in drawn
    assert console.file.getvalue().endswith("\x1b[2K")  # transient: the last frame is erased


def test_rate_and_time_left_wait_for_a_second_of_files_after_the_first_batch():
    progress = RichIndexProgress(console=terminal())
    progress.started(200, {"image": 200})
    progress.advanced(32, "image")  # the first batch, after the model loaded: it starts the clock
    progress.advanced(32, "image")  # a second worker's first batch, a moment later
    line = bar_line(snapshot(progress), "image")
    assert "files/s" not in line and not re.search(r"\d:\d\d:\d\d", line), line  # not "1136 files/s, 0:00:01"

    time.sleep(1.2)
    progress.advanced(32, "image")
    line = bar_line(snapshot(progress), "image")
    rate = float(re.search(r"([\d.]+) files/s", line).group(1))
    assert 64 / 10 < rate < 64 / 1.2  # 64 files after the first batch, in the 1.2 s (and the frame's delay) since
    hours, minutes, seconds = map(int, re.search(r"(\d+):(\d\d):(\d\d)", line).groups())
    assert abs(hours * 3600 + minutes * 60 + seconds - 104 / rate) <= 1  # the 104 files left at that rate


def test_a_total_without_a_split_gets_one_bar():
    progress = RichIndexProgress(console=terminal())
    progress.started(5)
    progress.advanced(2)
    assert re.search(r"\b2/5\b", bar_line(snapshot(progress), "files"))


def test_nothing_to_read_draws_the_phase_only():
    progress = RichIndexProgress(console=terminal())
    progress.started(0, {})
    progress.phase("saving")
    assert len(snapshot(progress)) == 1


def test_many_small_advances_add_up():
    progress = RichIndexProgress(console=terminal())
    progress.started(100_000, {"image": 60_000, "audio": 40_000})
    for i in range(100_000):
        progress.advanced(1, "image" if i % 5 < 3 else "audio")
    shown = snapshot(progress)
    assert "60000/60000" in bar_line(shown, "image")
    assert "40000/40000" in bar_line(shown, "audio")


def run_in_terminal(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    """Run a command with stdout and stderr on a pseudo-terminal; returns what it drew, escapes removed."""
    pty = pytest.importorskip("pty")
    try:
        leader, follower = pty.openpty()
    except OSError:
        pytest.skip("no pseudo-terminal available")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env)
    os.close(follower)  # the child holds its copy: reading ends once the child exits
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([leader], [], [], 1)[0]:
                continue
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO on Linux: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(leader)
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")
    return _ANSI.sub("", b"".join(chunks).decode(errors="replace"))


def test_index_in_a_terminal_shows_each_modality(tmp_path):
    env = {
        **os.environ,
        "BINDSEARCH_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "BINDSEARCH_CACHE": str(tmp_path / "cache"),
        "COLUMNS": "100",
    }
    drawn = run_in_terminal(
        [sys.executable, "-m", "bindsearch.cli", "index", str(REPO / "examples" / "media"),
         "--space", str(REPO / "examples" / "tiny-imagebind.json"), "--library", str(tmp_path / "lib")],
        env,
    )
    lines = re.split(r"[\r\n]+", drawn)  # a frame is redrawn after a carriage return
    for modality in ("image", "text", "audio", "video", "depth", "thermal", "imu"):
        # Each modality gets a bar, and its last frame shows all of its files done.
        assert any(re.match(rf"\s+{modality}\s.*\s(\d+)/\1\s", line) for line in lines), (modality, drawn)
    assert "loading model" in drawn
    assert re.search(r"added [1-9]", drawn)  # the summary follows the erased display


def run_in_tmux(args: list[str], env: dict[str, str], timeout: float = 600) -> list[str]:
    """Run a command in a tmux window of 110 x 40; returns the screen once it ended, with its exit status last."""
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed")
    server = ["tmux", "-L", f"bindsearch-test-{os.getpid()}"]  # a server of its own
    command = shlex.join(["env", *(f"{k}={v}" for k, v in env.items()), *args])
    subprocess.run([*server, "new-session", "-d", "-x", "110", "-y", "40", f"{command}; echo exit $?; sleep 600"],
                   check=True, timeout=30)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = subprocess.run([*server, "capture-pane", "-p"], capture_output=True, text=True,
                                    check=True, timeout=30).stdout.rstrip().splitlines()
            if screen and re.fullmatch(r"exit \d+", screen[-1]):
                return screen
            time.sleep(1)
        raise AssertionError(f"still running after {timeout} s:\n" + "\n".join(screen))
    finally:
        subprocess.run([*server, "kill-server"], timeout=30)


def test_worker_warnings_are_shown_once_above_the_display_in_tmux(tmp_path):
    env = {"BINDSEARCH_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "BINDSEARCH_CACHE": str(tmp_path / "cache"),
           "PATH": os.environ["PATH"]}
    screen = run_in_tmux(
        [sys.executable, "-m", "bindsearch.cli", "index", str(REPO / "examples" / "media"), "--workers", "2",
         "--space", str(REPO / "examples" / "tiny-imagebind.json"), "--library", str(tmp_path / "lib")],
        env,
    )
    text = "\n".join(screen)
    assert screen[-1] == "exit 0", text
    # Each worker builds the random model and warns: one warning on the screen, printed by this process.
    assert text.count("RANDOM weights") == 1, text
    assert screen[0].startswith("warning: space imagebind:random(seed=0) has RANDOM weights"), text
    # The display was erased whole: no frame of it left between or after the lines printed.
    assert not any(frame in text for frame in ("loading model", "reading files", "embedding", "/14 files")), text
    assert not any(line[:1] in _SPINNER_FRAMES for line in screen if line), text
    assert re.search(r"^added 14, ", text, flags=re.M), text
