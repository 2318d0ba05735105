"""What an indexing run tells: each failed file once, skips for the reason they had, one copy of each warning."""

from __future__ import annotations

import json
import logging
import multiprocessing
import subprocess
import sys
import warnings
from pathlib import Path

from bindsearch.cli.render import index_summary
from bindsearch.indexer import IndexReport
from bindsearch.indexer.worker_logs import WorkerLogs, forward_to
from helpers import REPO, TINY_SPACE_FILE, draw_image, write_video

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"


def bindsearch_cli(*args: object) -> subprocess.CompletedProcess:
    """The CLI in a new process, stderr a pipe (no live display); the tests' environment (offline, own cache)."""
    return subprocess.run([sys.executable, "-m", "bindsearch.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_a_corrupt_video_is_one_failed_file_though_both_its_items_fail(tmp_path: Path) -> None:
    media = tmp_path / "media"
    draw_image(media / "fine.png", seed=1)
    (media / "broken.mp4").write_bytes(b"this is not an MP4 file\n" * 40)
    library = tmp_path / "lib"

    done = bindsearch_cli("index", media, "--space", TINY_IMAGEBIND, "--library", library)
    assert done.returncode == 3, done.stderr
    assert "failed 1" in done.stderr
    assert [line for line in done.stderr.splitlines() if "broken.mp4" in line] == [
        next(line for line in done.stderr.splitlines() if line.strip().startswith("failed "))
    ]

    again = bindsearch_cli("index", media, "--library", library, "--json")  # failed items are read again
    report = json.loads(again.stdout)
    assert report["failed"] == 1 and [e["path"] for e in report["errors"]] == [str(media / "broken.mp4")]

    # The library still holds a failed item per modality: the frames and the soundtrack.
    info = bindsearch_cli("info", "--library", library, "--json")
    failed = json.loads(info.stdout)["failed"]
    assert sorted(f["path"] for f in failed) == [str(media / "broken.mp4")] * 2


def test_a_report_counts_a_failed_file_once_with_its_first_reason() -> None:
    report = IndexReport()
    report.fail("/m/clip.mp4", "corrupt or truncated video")
    report.fail("/m/clip.mp4", "corrupt or truncated audio")
    report.fail("/m/other.jpg", "corrupt or truncated image")
    assert report.failed == 2
    assert [(e.path, e.reason) for e in report.errors] == [
        ("/m/clip.mp4", "corrupt or truncated video"), ("/m/other.jpg", "corrupt or truncated image")]


def test_a_video_without_a_soundtrack_is_not_called_unembeddable(tmp_path: Path) -> None:
    media = tmp_path / "media"
    write_video(media / "mute.mp4", seconds=1.0, sound=False)
    done = bindsearch_cli("index", media, "--space", TINY_IMAGEBIND, "--library", tmp_path / "lib")
    assert done.returncode == 0, done.stderr
    assert "skipped 1 (nothing to embed in them, like a video without a soundtrack)" in done.stderr
    assert "nothing this space can embed" not in done.stderr


def test_media_the_space_has_no_encoder_for_is_called_unembeddable(tmp_path: Path) -> None:
    media = tmp_path / "media"
    draw_image(media / "photo.png", seed=1)
    write_video(media / "clip.mp4", seconds=1.0, sound=False)  # no video or audio encoder in an OpenCLIP space
    done = bindsearch_cli("index", media, "--space", TINY_SPACE_FILE, "--library", tmp_path / "lib", "--json")
    report = json.loads(done.stdout)
    assert (report["skipped"], report["unsupported"]) == (1, 1)
    plain = bindsearch_cli("index", media, "--library", tmp_path / "lib")
    assert "skipped 1 (nothing this space can embed)" in plain.stderr


def test_both_kinds_of_skip_are_told_apart_in_the_summary() -> None:
    summary = index_summary(IndexReport(added=3, skipped=3, unsupported=2))
    assert "skipped 3 (2 nothing this space can embed, 1 nothing to embed in them)" in summary


def test_the_random_weights_warning_is_said_once_per_command(tmp_path: Path) -> None:
    library = tmp_path / "lib"
    # Two workers, each building its own copy of the random model, and each warning.
    done = bindsearch_cli("index", REPO / "examples" / "media", "--space", TINY_IMAGEBIND, "--library", library,
                          "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("RANDOM weights") == 1, done.stderr
    assert done.stderr.startswith("warning: space imagebind:random(seed=0) has RANDOM weights"), done.stderr
    for _ in range(2):  # and once per query, every query
        query = bindsearch_cli("query", "--text", "a rocket", "--image", REPO / "examples" / "media" / "cat.jpg",
                               "--library", library)
        assert query.returncode == 0, query.stderr
        assert query.stderr.count("RANDOM weights") == 1, query.stderr


def _warn_as_a_worker(queue: object, level: int) -> None:
    forward_to(queue, level)
    logging.getLogger("bindsearch").warning("the same warning from every worker")
    logging.getLogger("bindsearch").info("a note below the level asked for")
    warnings.warn("a library's own warning,\nover two lines", UserWarning, stacklevel=1)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_worker_warnings_reach_this_process_once_each_and_not_its_stderr(capfd) -> None:
    logger = logging.getLogger("bindsearch")
    collect, level, others = _Collect(), logger.level, list(logger.handlers)
    for handler in others:  # a command run earlier in this process left its stderr handler
        logger.removeHandler(handler)
    logger.addHandler(collect)
    logger.setLevel(logging.WARNING)
    try:
        spawn = multiprocessing.get_context("spawn")
        logs = WorkerLogs(spawn)
        workers = [spawn.Process(target=_warn_as_a_worker, args=(logs.queue, logs.level)) for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
            assert worker.exitcode == 0
        logs.close()
    finally:
        logger.removeHandler(collect)
        for handler in others:
            logger.addHandler(handler)
        logger.setLevel(level)
    assert collect.messages == ["the same warning from every worker", "UserWarning: a library's own warning,"]
    assert capfd.readouterr().err == ""  # nothing written by the workers themselves
