"""What the command line writes for scripts: exact path bytes, header rows, one-line usage errors, --help."""

import json
import os
import re
import subprocess
import sys

import pytest
from bindsearch.cli.app import app
from helpers import TINY_SPACE_FILE
from PIL import Image
from typer.testing import CliRunner

runner = CliRunner()

# A newline, a byte that is not UTF-8, and an ordinary name.
ODD_NAMES = [b"two\nlines.png", b"latin1-\xe9t\xe9.png", b"plain.png"]


def bindsearch(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bindsearch.cli", *map(str, args)], capture_output=True,
                          timeout=300, **kwargs)


@pytest.fixture(scope="module")
def odd_library(tmp_path_factory):
    """A library of three images whose names hold a newline, a non-UTF-8 byte, nothing odd."""
    root = tmp_path_factory.mktemp("odd")
    media = os.fsencode(root / "media")
    os.mkdir(media)
    for n, name in enumerate(ODD_NAMES):
        with open(os.path.join(media, name), "wb") as f:
            Image.new("RGB", (64, 64), (70 * n, 40, 200 - 60 * n)).save(f, format="PNG")
    lib = root / "lib"
    done = runner.invoke(app, ["index", os.fsdecode(media), "--library", str(lib), "--space", str(TINY_SPACE_FILE),
                               "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["added"] == 3
    return lib, [os.path.join(media, name) for name in ODD_NAMES]


def test_null_separated_paths_round_trip_through_xargs(odd_library):
    """``query -0 | xargs -0 stat``: the very files, newline and odd byte included, reach the other program."""
    lib, files = odd_library
    pipeline = (f"{sys.executable} -m bindsearch.cli query --text 'a picture' --library '{lib}' -0 "
                "| xargs -0 stat --printf '%i\\n' --")
    done = subprocess.run(["sh", "-c", pipeline], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    inodes = sorted(int(line) for line in done.stdout.split())
    assert inodes == sorted(os.stat(f).st_ino for f in files)


def test_paths_are_the_file_names_bytes(odd_library):
    lib, files = odd_library
    done = bindsearch("query", "--text", "a picture", "--library", lib, "--paths")
    assert done.returncode == 0, done.stderr
    written = done.stdout
    for f in files:
        assert f + b"\n" in written  # as the file system holds it: no U+FFFD, no escaping
    assert "\ufffd".encode() not in written
    nul = bindsearch("query", "--text", "a picture", "--library", lib, "--null").stdout
    assert sorted(nul.split(b"\0")[:-1]) == sorted(files) and nul.endswith(b"\0")


def test_json_keeps_valid_strings_with_odd_bytes_replaced(odd_library):
    lib, _ = odd_library
    done = bindsearch("query", "--text", "a picture", "--library", lib, "--json")
    paths = {os.path.basename(h["path"]) for h in json.loads(done.stdout.decode("utf-8"))}
    assert paths == {"two\nlines.png", "latin1-\ufffdt\ufffd.png", "plain.png"}


def test_json_and_null_exclude_each_other(odd_library):
    lib, _ = odd_library
    done = bindsearch("query", "--text", "x", "--library", lib, "--json", "-0")
    assert done.returncode == 2
    assert done.stderr.decode().strip() == "error: choose one of --json and --null"


def test_piped_tables_start_with_a_header_row(odd_library):
    lib, files = odd_library
    rows = runner.invoke(app, ["query", "--text", "x", "--library", str(lib)]).stdout.splitlines()
    assert rows[0].split("\t") == ["rank", "score", "calibrated", "modality", "path"]
    tagged = runner.invoke(app, ["tag", os.fsdecode(files[2]), "--add", "odd", "--library", str(lib)])
    assert tagged.stdout.splitlines()[0].split("\t") == ["path", "modality", "tags"]
    rows = runner.invoke(app, ["query", "--text", "x", "--library", str(lib)]).stdout.splitlines()
    assert rows[0].split("\t") == ["rank", "score", "calibrated", "modality", "path", "tags"]
    labels = runner.invoke(app, ["classify", os.fsdecode(files[2]), "--labels", "dog,cat", "--library", str(lib)])
    assert labels.stdout.splitlines()[0].split("\t") == ["file", "label", "probability"]


def test_a_reader_that_goes_away_ends_the_output_quietly(odd_library):
    """``query ... | head -0``: no BrokenPipeError line, the status a Unix tool stopped by SIGPIPE gets."""
    lib, _ = odd_library
    for args in (["--paths"], []):
        proc = subprocess.Popen([sys.executable, "-m", "bindsearch.cli", "query", "--text", "x", "--library",
                                 str(lib), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()  # gone before the first result is written
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=300) == 141, stderr
        assert "BrokenPipe" not in stderr and "Exception ignored" not in stderr and "error" not in stderr, stderr


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["query", "--no-such-option"], ["bindsearch query: No such option: --no-such-option"]),
        (["index"], ["bindsearch index: Missing argument 'PATH'"]),
        (["query", "-k", "many", "--text", "x"], ["bindsearch query:", "'--top' / '-k'"]),
        (["frobnicate"], ["No such command 'frobnicate'"]),
    ],
)
def test_command_line_usage_errors_are_one_line(args, fragments):
    done = bindsearch(*args)
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert all(f in lines[0] for f in fragments), lines
    assert done.stdout == b""


def test_bindsearch_alone_shows_its_help():
    done = bindsearch()
    assert b"Usage: bindsearch [OPTIONS] COMMAND" in done.stdout + done.stderr
    assert b"error" not in done.stderr


def _commands():
    return {info.name: info for info in app.registered_commands}


def test_a_short_option_means_one_thing_in_every_command():
    import typer.main

    group = typer.main.get_command(app)
    meaning: dict[str, set[str]] = {}
    for _name, command in group.commands.items():
        for param in command.params:
            longs = [o for o in param.opts if o.startswith("--")]
            for short in (o for o in param.opts if not o.startswith("--")):
                meaning.setdefault(short, set()).update(longs)
    conflicts = {short: longs for short, longs in meaning.items() if len(longs) > 1}
    assert conflicts == {}
    assert meaning["-a"] == {"--audio"} and meaning["-0"] == {"--null"}


@pytest.mark.parametrize("command", sorted(_commands()))
def test_help_has_no_type_placeholders(command):
    done = runner.invoke(app, [command, "--help"], env={"COLUMNS": "100"})
    assert done.exit_code == 0
    assert not re.search(r"<[a-z]+(\[[a-zA-Z]+\])?>", done.stdout), done.stdout
    assert "{" not in done.stdout.splitlines()[0], done.stdout  # the usage line: PATH..., not {PATH}...


def test_command_list_gives_whole_summaries():
    done = runner.invoke(app, ["--help"], env={"COLUMNS": "100"})
    listing = done.stdout.split("Commands:")[1]
    assert "..." not in listing, listing
    assert "missing ones removed" in " ".join(listing.split())  # index's summary, to its end


def test_embed_help_says_it_takes_one_input():
    help_text = " ".join(runner.invoke(app, ["embed", "--help"]).stdout.split())
    assert "repeatable" not in help_text and "one input in all" in help_text
    done = bindsearch("embed", "--text", "a", "--text", "b", "--space", TINY_SPACE_FILE)
    assert done.returncode == 2 and b"error: embed takes exactly one input" in done.stderr
