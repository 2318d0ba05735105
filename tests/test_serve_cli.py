"""query, embed and classify send their work to a running `bindsearch serve` of their library, and answer as
they do alone: the same output, byte for byte, without loading the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from serve_helpers import demo_library, running_server

from bindsearch.server.state_file import STATE_FILE

# The command, run as the console script runs it, then a line on stderr telling whether PyTorch was imported.
RUN = """
import sys
sys.argv = ["bindsearch", *sys.argv[1:]]
try:
    from bindsearch.cli.app import main
    main()
finally:
    print("torch imported" if "torch" in sys.modules else "torch not imported", file=sys.stderr)
"""


def _run(library: Path, cwd: Path, *args: str) -> tuple[str, str, bool]:
    done = subprocess.run([sys.executable, "-c", RUN, *args, "--library", str(library)], capture_output=True,
                          text=True, timeout=300, cwd=cwd)
    stderr = [line for line in done.stderr.splitlines() if "RANDOM weights" not in line]
    assert stderr[-1] in ("torch imported", "torch not imported"), done.stderr
    return f"{done.returncode}\n{done.stdout}", "\n".join(stderr[:-1]), stderr[-1] == "torch imported"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_library(tmp_path_factory.mktemp("cli-demo"))


def _cases(media: Path) -> list[list[str]]:
    return [
        ["query", "--text", "a dog", "--json"],
        ["query", "2:a cat", "+", str(media / "cat.jpg"), "-", "0.5:a leash", "--target", "all", "-k", "8", "--json"],
        ["query", "--audio", "media/sounds/speech.wav", "--target", "image", "--target", "audio"],
        ["query", "--like", "media/cat.jpg", "--target", "all", "--paths"],
        ["query", "--text", "a launch", "--path", "media/notes", "--path", "*.png", "--json"],
        ["query", "--video", str(media / "clips" / "bands.mp4"), "--windows", "--exact", "--json"],
        ["query", "--text", "a dog", "--dedup", "0.9", "--min-size", "1k", "--json"],
        ["query", "--like", "999999"],
        ["query", "--image", "media/no-such.jpg"],
        ["embed", "--text", "a dog", "--json"],
        ["embed", "--depth", "media/depth/room.png"],
        ["classify", "media/cat.jpg", str(media / "sounds" / "birdsong.wav"), "--labels", "cat,bird,rocket", "--json"],
        ["classify", "media/cat.jpg", "media/missing.jpg", "--labels", "cat,bird"],
    ]


def test_commands_answer_the_same_through_the_server_without_loading_the_model(demo: Path) -> None:
    root = demo.parent
    cases = _cases(root / "media")
    alone = [_run(demo, root, *case) for case in cases]
    embedding = [0, 1, 2, 4, 5, 6]  # (case 3 is a like query: it needs no model even alone)
    assert [alone[n][2] for n in embedding] == [True] * 6  # the in-process path does load the model
    with running_server(demo):
        served = [_run(demo, root, *case) for case in cases]
        forced = _run(demo, root, *cases[0], "--no-server")
    for case, (out, err, _), (served_out, served_err, _) in zip(cases, alone, served):
        assert served_out == out, case
        if case[-1] not in ("media/missing.jpg",):
            assert served_err == err, case
    assert [torch for *_, torch in served[:7]] == [False] * 7  # answered by the server: no model here
    assert [torch for *_, torch in served] == [False] * 12 + [True]  # (a missing file is labelled alone)
    assert forced[2] and forced[0] == alone[0][0]  # --no-server works alone


def test_a_stale_state_file_is_ignored(demo: Path) -> None:
    root = demo.parent
    alone = _run(demo, root, "query", "--text", "a dog", "--json")
    state = demo / STATE_FILE
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for record in ({"url": "http://127.0.0.1:9", "pid": dead.pid, "token": "x" * 16, "library": str(demo)},
                   {"url": "http://127.0.0.1:9", "pid": os.getpid(), "token": "x" * 16, "library": str(demo)}):
        state.write_text(json.dumps(record))
        try:
            out, err, torch = _run(demo, root, "query", "--text", "a dog", "--json")
        finally:
            state.unlink()
        assert (out, err) == alone[:2] and torch
