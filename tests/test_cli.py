"""The command line: typer's runner for details, real subprocesses for the whole user story."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from bindsearch.cli.app import app
from helpers import TINY_SPACE_FILE, copy_examples, draw_image
from typer.testing import CliRunner

runner = CliRunner()


def run_cli(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def bindsearch_exe() -> str:
    exe = shutil.which("bindsearch", path=os.path.dirname(sys.executable))
    assert exe, "the bindsearch console script is not installed next to this Python"
    return exe


def sh(*args, env=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([bindsearch_exe(), *map(str, args)], capture_output=True, text=True, env=full_env,
                          timeout=300)


def assert_one_line_error(stderr: str, *fragments: str):
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], stderr


def test_user_story_in_real_processes(tmp_path):
    """The README's quick start, as a new user runs it."""
    media = copy_examples(tmp_path / "media")
    env = {"BINDSEARCH_LIBRARY": str(tmp_path / "lib")}

    first = sh("index", media, "--space", TINY_SPACE_FILE, "--json", env=env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["added"] == 7 and report["failed"] == 0 and report["errors"] == []
    assert report["skipped"] == 6  # sound, video, depth, thermal and IMU files: no encoder in an OpenCLIP space
    for key in ("added", "updated", "unchanged", "removed", "failed"):
        assert isinstance(report[key], int)

    query = sh("query", "--image", media / "cat.jpg", "--target", "image", "--json", env=env)
    assert query.returncode == 0, query.stderr
    hits = json.loads(query.stdout)
    assert hits[0]["path"] == str(media / "cat.jpg")
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    assert {h["modality"] for h in hits} == {"image"}

    again = sh("index", media, "--json", env=env)
    assert again.returncode == 0
    report = json.loads(again.stdout)
    assert (report["unchanged"], report["added"], report["updated"], report["embedded"]) == (7, 0, 0, 0)
    assert report["skipped"] == 6

    (media / "cat.jpg").unlink()
    after_delete = json.loads(sh("index", media, "--json", env=env).stdout)
    assert after_delete["removed"] == 1
    hits = json.loads(sh("query", "--text", "a cat", "--json", "-k", "20", env=env).stdout)
    assert str(media / "cat.jpg") not in [h["path"] for h in hits]
    assert len(hits) == 6

    (media / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    bad = sh("index", media, env=env)
    assert bad.returncode == 3
    assert "failed 1" in bad.stderr and "broken.jpg" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_missing_query_file_is_one_line_and_exit_2(tmp_path):
    env = {"BINDSEARCH_LIBRARY": str(tmp_path / "lib")}
    draw_image(tmp_path / "m" / "a.png", 1)
    assert sh("index", tmp_path / "m", "--space", TINY_SPACE_FILE, env=env).returncode == 0
    result = sh("query", "--image", tmp_path / "missing.png", env=env)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "missing.png", "no such file")


def test_space_mismatch_exit_2_and_names_the_held_space(tmp_path):
    lib = tmp_path / "lib"
    draw_image(tmp_path / "m" / "a.png", 1)
    assert run_cli("index", tmp_path / "m", "--library", lib, "--space", TINY_SPACE_FILE).exit_code == 0
    other = tmp_path / "other.json"
    other.write_text(TINY_SPACE_FILE.read_text().replace('"seed": 0', '"seed": 3'))
    result = run_cli("query", "--text", "x", "--library", lib, "--space", other)
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "openclip:inline-config/random(seed=0)")


def test_no_network_error_is_one_line_and_quick(tmp_path):
    draw_image(tmp_path / "m" / "a.png", 1)
    env = {"HF_HUB_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:9", "BINDSEARCH_CACHE": str(tmp_path / "cache")}
    result = sh("index", tmp_path / "m", "--library", tmp_path / "lib", "--space",
                "openclip:ViT-B-32/laion2b_s34b_b79k", env=env)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "cannot download the weights of openclip:ViT-B-32/laion2b_s34b_b79k",
                          "space file")
    # The failed first run does not tie the library to a space it could not load.
    retry = sh("index", tmp_path / "m", "--library", tmp_path / "lib", "--space", TINY_SPACE_FILE)
    assert retry.returncode == 0, retry.stderr


def test_default_space_without_its_checkpoint_is_one_line(tmp_path):
    draw_image(tmp_path / "m" / "a.png", 1)
    env = {"BINDSEARCH_OFFLINE": "1", "BINDSEARCH_CACHE": str(tmp_path / "cache")}
    result = sh("index", tmp_path / "m", "--library", tmp_path / "lib", env=env)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "ImageBind checkpoint", '"checkpoint": "/path/to/imagebind_huge.pth"')
    assert not (tmp_path / "lib").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["index", "/definitely/not/here"], "no such file or folder"),
        (["index", ".", "--modality", "smell"], "unknown modality 'smell'"),
        (["index", ".", "--space", "bogus"], "unknown space 'bogus'"),
        (["query"], "give at least one query term: --text, --image, --audio"),
        (["info"], "no library at"),
    ],
)
def test_bad_arguments_exit_2(args, fragment, tmp_path):
    result = run_cli(*args, "--library", tmp_path / "lib")
    assert result.exit_code == 2, result.output
    assert_one_line_error(result.stderr, fragment)


def test_index_json_lists_errors_and_exit_3(tmp_path):
    draw_image(tmp_path / "m" / "a.png", 1)
    (tmp_path / "m" / "zero.png").write_bytes(b"")
    result = run_cli("index", tmp_path / "m", "--library", tmp_path / "lib", "--space", TINY_SPACE_FILE, "--json")
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["failed"] == 1
    assert report["errors"] == [{"path": str(tmp_path / "m" / "zero.png"), "reason": "empty file (0 bytes)"}]


def test_query_table_and_info(tmp_path):
    lib = tmp_path / "lib"
    media = copy_examples(tmp_path / "media")
    run_cli("index", media, "--library", lib, "--space", TINY_SPACE_FILE)
    table = run_cli("query", "--text", "a rocket", "--library", lib, "-k", "3")
    assert table.exit_code == 0
    header, *rows = [line.split("\t") for line in table.stdout.strip().splitlines()]
    assert header == ["rank", "score", "calibrated", "modality", "path"]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    info = run_cli("info", "--library", lib, "--json")
    data = json.loads(info.stdout)
    assert data["counts"] == {"image": 5, "text": 2}
    assert data["space"] == "openclip:inline-config/random(seed=0)"
    assert data["dim"] == 64
    assert "image 5" in run_cli("info", "--library", lib).stdout


def test_embed_prints_the_unit_vector(tmp_path):
    result = run_cli("embed", "--space", TINY_SPACE_FILE, "--text", "a dog", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["modality"] == "text" and data["dim"] == 64 and len(data["embedding"]) == 64
    assert sum(v * v for v in data["embedding"]) == pytest.approx(1.0, abs=1e-5)
    # Same vector through the Python API.
    import bindsearch

    ref = bindsearch.embed("text", "a dog", space=TINY_SPACE_FILE)
    assert data["embedding"] == pytest.approx(ref.tolist(), abs=1e-6)


def test_embed_uses_the_library_space_by_default(tmp_path):
    lib = tmp_path / "lib"
    draw_image(tmp_path / "m" / "a.png", 1)
    run_cli("index", tmp_path / "m", "--library", lib, "--space", TINY_SPACE_FILE)
    result = run_cli("embed", "--image", tmp_path / "m" / "a.png", "--library", lib, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["dim"] == 64


def test_second_writer_is_refused_with_the_holder_named(tmp_path):
    import bindsearch

    draw_image(tmp_path / "m" / "a.png", 1)
    with bindsearch.open_library(tmp_path / "lib", TINY_SPACE_FILE, create=True) as lib, lib.writer():
        result = sh("index", tmp_path / "m", "--library", tmp_path / "lib")
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "being written by another bindsearch process", f"pid {os.getpid()}")


def test_version():
    assert run_cli("--version").stdout.startswith("bindsearch ")


def test_imagebind_quick_start_in_real_processes(tmp_path):
    """The README's offline ImageBind demo: every modality of the example folder, then audio -> images."""
    media = copy_examples(tmp_path / "media")
    space = TINY_SPACE_FILE.parent / "tiny-imagebind.json"
    env = {"BINDSEARCH_LIBRARY": str(tmp_path / "lib")}
    first = sh("index", media, "--space", space, "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["added"] == 14
    info = json.loads(sh("info", "--json", env=env).stdout)
    assert info["counts"] == {"audio": 3, "depth": 1, "image": 5, "imu": 1, "text": 2, "thermal": 1, "video": 1}
    hits = json.loads(sh("query", "--audio", media / "sounds" / "birdsong.wav", "--target", "image", "--json",
                         env=env).stdout)
    assert len(hits) == 5 and {h["modality"] for h in hits} == {"image"}
    both = json.loads(sh("query", "--imu", media / "imu" / "walk.csv", "--depth", media / "depth" / "room.png",
                         "--json", "-k", "3", env=env).stdout)
    assert len(both) == 3
