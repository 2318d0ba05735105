"""An exported file names its space in full, and ``bindsearch import`` makes a new library of that space.

Real files and libraries, the command line as a subprocess: a library's export imported into a library
that does not exist yet, without ``--space``, gets the exporting library's space; a file that does not
name its space in full, or whose spec does not match the fingerprint it records, is one line of error
and no library is made.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import write_space

import bindsearch
from bindsearch.bulk_import import file_space, read_header
from bindsearch.errors import SpaceMismatchError, UsageError

ROWS, DIM = 40, 64  # the tiny OpenCLIP space's dimension


def cli(*args: object) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot import"), done.stderr
    return lines[0]


def unit_rows(seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(ROWS, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def paths() -> list[str]:
    return [f"/data/space/{i:03d}.png" for i in range(ROWS)]


def hand_made(file: Path, **extra: object) -> Path:
    """A .npz as another tool writes it: no space named unless ``extra`` names one."""
    np.savez(file, path=np.array(paths()), modality=np.array("image"), vector=unit_rows(1),
             **{k: np.array(v) for k, v in extra.items()})
    return file


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A library of a space no default names (the tiny OpenCLIP space, other random weights), with ROWS items."""
    space = write_space(tmp_path / "seed7.json", seed=7)
    with bindsearch.open_library(tmp_path / "source", space, create=True) as lib:
        assert lib.import_vectors(hand_made(tmp_path / "hand.npz")).added == ROWS
    return tmp_path / "source"


def exported(lib: Path, file: Path) -> dict[str, np.ndarray]:
    """The library's items written to ``file`` (``export``), and read back: vectors by path."""
    with bindsearch.Library.open(lib) as library:
        library.export(file)
    return read_back(file)


def read_back(file: Path) -> dict[str, np.ndarray]:
    if file.suffix == ".npz":
        with np.load(file, allow_pickle=False) as data:
            return {str(p): v for p, v in zip(data["path"], data["vector"])}
    table = pq.read_table(file)
    return {p: np.array(v, np.float32) for p, v in zip(table["path"].to_pylist(), table["vector"].to_pylist())}


def info(lib: Path) -> dict:
    done = cli("info", "--library", lib, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def fingerprint(lib: Path) -> str:
    with bindsearch.Library.open(lib) as library:
        return library.fingerprint


@pytest.mark.parametrize("name", ["all.npz", "all.parquet"])
def test_an_export_makes_a_new_library_of_its_own_space(source, tmp_path, name):
    file = tmp_path / name
    done = cli("export", file, "--library", source)
    assert done.returncode == 0, done.stderr
    vectors = read_back(file)
    with bindsearch.Library.open(source) as lib:
        spec = lib.space.spec
    if file.suffix == ".npz":
        with np.load(file, allow_pickle=False) as data:
            assert json.loads(str(data["space_spec"])) == spec
    else:
        assert json.loads(pq.read_schema(file).metadata[b"bindsearch.space_spec"]) == spec

    done = cli("import", file, "--library", tmp_path / "copy", "--json")  # no --space: the file's own
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["added"] == ROWS
    theirs, ours = info(source), info(tmp_path / "copy")
    assert (ours["space"], ours["fingerprint"], ours["dim"]) == (theirs["space"], theirs["fingerprint"], DIM)
    assert ours["fingerprint"] != bindsearch.load_space(write_space(tmp_path / "seed0.json")).fingerprint
    copied = exported(tmp_path / "copy", tmp_path / f"again{file.suffix}")
    assert set(copied) == set(vectors) and all(np.array_equal(copied[p], v) for p, v in vectors.items())
    with bindsearch.Library.open(tmp_path / "copy") as copy:
        assert copy.space.spec == spec
        probe = paths()[5]
        assert [h.path for h in copy.search(vectors[probe], targets=["image"], k=1)] == [probe]


def test_the_python_api_makes_the_same_library_from_the_file_space(source, tmp_path):
    exported(source, tmp_path / "all.npz")
    space = file_space(read_header(tmp_path / "all.npz"))
    assert space.fingerprint == fingerprint(source)
    with bindsearch.open_library(tmp_path / "copy", space, create=True) as copy:
        assert copy.import_vectors(tmp_path / "all.npz").added == ROWS
        assert copy.fingerprint == space.fingerprint


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_a_file_without_a_spec_needs_space_for_a_new_library(source, tmp_path, suffix):
    file = tmp_path / f"all{suffix}"
    exported(source, file)
    if suffix == ".npz":  # as an older export wrote it: space and fingerprint, no spec
        with np.load(file, allow_pickle=False) as data:
            kept = {k: data[k] for k in data.files if k != "space_spec"}
        np.savez(file, **kept)
    else:
        table = pq.read_table(file)
        meta = {k: v for k, v in table.schema.metadata.items() if k != b"bindsearch.space_spec"}
        pq.write_table(table.replace_schema_metadata(meta), file)
    line = one_error_line(cli("import", file, "--library", tmp_path / "new"))
    assert "does not say which space its vectors are in (it names space openclip:" in line
    assert line.endswith("pass --space with the space its vectors were made in")
    line = one_error_line(cli("import", hand_made(tmp_path / "hand.npz"), "--library", tmp_path / "new"))
    assert "does not say which space" in line and "--space" in line
    assert not (tmp_path / "new").exists()
    # Named, the space is used, and an existing library takes the file on its own space as before.
    done = cli("import", file, "--library", tmp_path / "new", "--space", tmp_path / "seed7.json")
    assert done.returncode == 0, done.stderr
    assert cli("import", tmp_path / "hand.npz", "--library", tmp_path / "new").returncode == 0


def test_bindsearch_space_names_the_space_of_a_file_that_names_none(tmp_path, monkeypatch):
    monkeypatch.setenv("BINDSEARCH_SPACE", str(write_space(tmp_path / "seed3.json", seed=3)))
    done = cli("import", hand_made(tmp_path / "hand.npz"), "--library", tmp_path / "new")
    assert done.returncode == 0, done.stderr
    assert fingerprint(tmp_path / "new") == bindsearch.load_space(tmp_path / "seed3.json").fingerprint


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_a_spec_of_another_fingerprint_than_the_file_records_is_refused(source, tmp_path, suffix):
    file = tmp_path / f"all{suffix}"
    exported(source, file)
    other = json.loads((tmp_path / "seed7.json").read_text()) | {"seed": 8}  # same shape, other weights
    if suffix == ".npz":
        with np.load(file, allow_pickle=False) as data:
            kept = {k: data[k] for k in data.files}
        np.savez(file, **(kept | {"space_spec": np.array(json.dumps(other))}))
    else:
        table = pq.read_table(file)
        meta = table.schema.metadata | {b"bindsearch.space_spec": json.dumps(other).encode()}
        pq.write_table(table.replace_schema_metadata(meta), file)
    recorded = fingerprint(source)
    theirs = bindsearch.load_space(other).fingerprint
    line = one_error_line(cli("import", file, "--library", tmp_path / "new"))
    assert f"has fingerprint {theirs}, the file records {recorded}" in line and "--space" in line
    assert not (tmp_path / "new").exists()
    with pytest.raises(SpaceMismatchError, match=f"the file records {recorded}"):
        file_space(read_header(file))


def test_a_changed_checkpoint_is_told_from_the_fingerprint_and_relative_paths_are_the_file_folder(tmp_path):
    (tmp_path / "export").mkdir()
    weights = tmp_path / "export" / "weights.bin"  # fingerprints read a checkpoint's bytes, never load it
    weights.write_bytes(np.random.default_rng(0).bytes(4096))
    spec = json.loads(write_space(tmp_path / "space.json", pretrained=str(weights)).read_text())
    recorded = bindsearch.load_space(spec).fingerprint
    file = hand_made(tmp_path / "export" / "v.npz", space_spec=json.dumps(spec | {"pretrained": "weights.bin"}),
                     fingerprint=recorded)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", "import", str(file), "--library", "lib"],
                          capture_output=True, text=True, timeout=300, cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert fingerprint(elsewhere / "lib") == recorded

    weights.write_bytes(np.random.default_rng(1).bytes(4096))  # retrained since the export
    line = one_error_line(cli("import", file, "--library", tmp_path / "new"))
    assert f"the file records {recorded}" in line and "the spec or its checkpoint changed" in line
    weights.unlink()
    line = one_error_line(cli("import", file, "--library", tmp_path / "new"))
    assert f"checkpoint file not found: {weights}" in line and line.endswith("were made in")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(("spec", "said"), [
    ("{not json", "its space spec is not JSON"),
    ("[1, 2]", "its space spec is not a JSON object"),
    (json.dumps({"model": "no-such-model"}), '"model" must be one of'),
    (json.dumps({"model": "openclip", "arch": {"embed_dim": 64}, "pretrained": None}), "lacks: vision_cfg"),
    (json.dumps({"model": "imagebind", "checkpoint": "http://127.0.0.1:9/x.pth"}),
     "names a checkpoint to download (http://127.0.0.1:9/x.pth)"),
])
def test_a_spec_that_is_no_usable_space_is_one_line(tmp_path, spec, said):
    file = hand_made(tmp_path / "v.npz", space_spec=spec)
    line = one_error_line(cli("import", file, "--library", tmp_path / "new"))
    assert said in line and "--space" in line, line
    assert not (tmp_path / "new").exists()
    with pytest.raises(UsageError):
        file_space(read_header(file))
