"""Shared fixtures: a tiny deterministic OpenCLIP space (random weights, no download) and media made on the fly."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import TINY_SPACE_FILE, draw_image
from postgres_server import PostgresServer

import bindsearch
from bindsearch.library.config import write_config


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never touch the user's real library or cache, and never wait on the network.
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("BINDSEARCH_LIBRARY", str(home / "default-library"))
    monkeypatch.setenv("BINDSEARCH_CACHE", str(home / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("BINDSEARCH_OFFLINE", "1")
    monkeypatch.delenv("BINDSEARCH_SPACE", raising=False)


@pytest.fixture(scope="session")
def tiny_space_file() -> Path:
    return TINY_SPACE_FILE


@pytest.fixture(scope="session")
def tiny_space(tiny_space_file: Path) -> bindsearch.Space:
    """One Space object for the whole session, so its model is built once."""
    return bindsearch.load_space(tiny_space_file)


@pytest.fixture
def library(tmp_path: Path, tiny_space: bindsearch.Space) -> bindsearch.Library:
    lib = bindsearch.open_library(tmp_path / "lib", tiny_space, create=True)
    yield lib
    lib.close()


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    """A PostgreSQL server for the session, on a Unix socket of its own."""
    server = PostgresServer().start()
    yield server
    server.stop()


# Metadata + vectors: a library folder (SQLite and vector files), or a library file naming a SQLite file or a
# PostgreSQL database for the metadata and a vector folder or a Milvus Lite file for the vectors.
BACKENDS = ["sqlite+faiss", "sqlite+milvus", "postgresql+faiss", "postgresql+milvus"]
FOLDER_BACKENDS = ["sqlite+faiss", "postgresql+faiss"]  # vectors in files, FAISS indexes


def library_places(backend: str, folder: Path, request: pytest.FixtureRequest):
    """``place(name)``: where a library called ``name`` lives under ``folder`` on ``backend`` (see BACKENDS):
    a library folder, or a library file (made on first use, with a new database where it needs one)."""
    if backend == "sqlite+faiss":
        return lambda name: folder / name
    metadata, vectors = backend.split("+")
    server = request.getfixturevalue("postgres") if metadata == "postgresql" else None

    def library_file(name: str) -> Path:
        path = folder / f"{name}.json"
        if not path.exists():
            url = server.new_database() if server is not None else f"sqlite:///{name}-metadata.db"
            write_config(path, url, f"milvus://{name}-vectors.db" if vectors == "milvus" else f"faiss://{name}")
        return path

    return library_file


@pytest.fixture(params=BACKENDS)
def place(request: pytest.FixtureRequest, tmp_path: Path):
    """Where a test's libraries live, once for each pair of metadata and vector backends (``library_places``)."""
    return library_places(request.param, tmp_path, request)


@pytest.fixture(params=FOLDER_BACKENDS)
def folder_place(request: pytest.FixtureRequest, tmp_path: Path):
    """``place`` for the backends whose vectors are files in a folder, with FAISS indexes beside them."""
    return library_places(request.param, tmp_path, request)


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """A small folder: four images in two formats, a subfolder, and two text notes."""
    root = tmp_path / "media"
    for i, name in enumerate(["a.png", "b.jpg", "sub/c.png", "sub/d.jpg"]):
        draw_image(root / name, seed=i)
    (root / "notes").mkdir()
    (root / "notes" / "dog.txt").write_text("a dog running on the beach\n")
    (root / "notes" / "car.md").write_text("# Cars\n\na red car parked on a street\n")
    return root


