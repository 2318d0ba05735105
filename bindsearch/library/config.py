"""Where a library lives: a folder (SQLite and vector files in it, today's local library), or a small JSON
file naming a metadata database and a vector store, which ``bindsearch init`` writes:

    {"bindsearch_library": 1, "metadata": "postgresql://me@db-host/media", "vectors": "faiss:///data/media",
     "space": "imagebind-huge"}

``metadata`` is a SQLAlchemy URL (SQLite or PostgreSQL); ``vectors`` says where the vectors and indexes are
kept: ``faiss:///folder`` (a local folder of vector files and FAISS indexes), ``milvus:///path/file.db``
(Milvus Lite, embedded) or ``milvus://host:19530`` / ``http://host:19530`` (a Milvus server). Relative paths
in the file are relative to the file's own folder, so a library's folder and its file can move together.
A Milvus library keeps this machine's own files of it (notes of files being read, a server's record, image
thumbnails) in a hidden folder named after the file (``.media.json.d/`` beside ``media.json``): hidden, so
that a scan of the folder the file lies in never takes it for media, nor it for a folder of media.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LibraryError, UsageError
from .database import shown_url

CONFIG_FORMAT = 1
CONFIG_SUFFIX = ".json"
_KEYS = {"bindsearch_library", "metadata", "vectors", "space"}
_VECTOR_SCHEMES = ("faiss", "milvus", "http", "https")


@dataclass(frozen=True)
class LibraryConfig:
    """What a library file names: its metadata database, its vector store, and (optionally) its space."""

    file: Path
    metadata: str  # a SQLAlchemy URL
    vectors: str  # faiss:///folder
    space: str | None = None

    @property
    def milvus(self) -> str | None:
        """The Milvus URI of the vector store (a relative Lite file made absolute), or None for a folder."""
        return milvus_uri(self.vectors, self.file.parent)

    @property
    def folder(self) -> Path:
        """The folder of the vector files and indexes (and of the writer's lock); for a Milvus library, this
        machine's folder of it."""
        if self.milvus is not None:
            return Path(os.path.abspath(self.file.with_name(f".{self.file.name}.d")))
        return vector_folder(self.vectors, self.file.parent)

    @property
    def shown(self) -> str:
        """The library as messages name it."""
        return f"{self.file} (metadata {shown_url(self.metadata)}, vectors {self.vectors})"

    def local_paths(self) -> list[Path]:
        """What the library keeps on this machine: its folder, and its SQLite file if it has one."""
        paths = [self.folder]
        if self.metadata.startswith("sqlite:///"):
            paths.append(Path(self.metadata[len("sqlite:///") :].partition("?")[0]))
        return paths

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bindsearch_library": CONFIG_FORMAT, "metadata": self.metadata,
                               "vectors": self.vectors}
        if self.space is not None:
            out["space"] = self.space
        return out


def is_config_path(path: Path) -> bool:
    """Whether ``path`` names a library file rather than a library folder."""
    return path.suffix.lower() == CONFIG_SUFFIX and not path.is_dir()


def read_config(path: Path) -> LibraryConfig:
    """The library file at ``path``; LibraryError naming the file and what is wrong with it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LibraryError(f"no library file {path} (bindsearch init {path} --metadata URL --vectors URI "
                           "writes one)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LibraryError(f"cannot read library file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except json.JSONDecodeError as exc:
        raise LibraryError(f"library file {path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or "bindsearch_library" not in data:
        raise LibraryError(f"{path} is not a bindsearch library file (no \"bindsearch_library\" key)")
    if data["bindsearch_library"] != CONFIG_FORMAT:
        raise LibraryError(f"library file {path} is of format {data['bindsearch_library']!r}; this bindsearch "
                           f"reads format {CONFIG_FORMAT}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise LibraryError(f"library file {path} has unknown keys: {', '.join(unknown)}")
    for key in ("metadata", "vectors"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise LibraryError(f"library file {path} names no {key} (a URL string)")
    space = data.get("space")
    if space is not None and not isinstance(space, str):
        raise LibraryError(f"library file {path}: \"space\" must be a space name or file")
    config = LibraryConfig(path.absolute(), metadata_url(data["metadata"], path.parent), data["vectors"], space)
    try:
        config.folder  # noqa: B018  (refuses a vector store it cannot use, here, naming the file)
    except UsageError as exc:
        raise LibraryError(f"library file {path}: {exc}") from None
    return config


def write_config(path: Path, metadata: str, vectors: str, space: str | None = None) -> LibraryConfig:
    """Write a library file (refusing to replace one); the config it holds."""
    if path.suffix.lower() != CONFIG_SUFFIX:
        raise UsageError(f"a library file's name ends in {CONFIG_SUFFIX}, not {path.name!r}")
    if milvus_uri(vectors, path.parent) is None:  # a vector store it cannot use is refused before any write
        vector_folder(vectors, path.parent)
    config = LibraryConfig(path.absolute(), metadata, vectors, space)
    text = json.dumps(config.to_json(), indent=2) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as out:  # (never over another library's file)
            out.write(text)
    except FileExistsError:
        raise UsageError(f"{path} exists already: choose another name, or delete it first") from None
    except OSError as exc:
        raise LibraryError(f"cannot write library file {path}: {exc.strerror or exc}") from None
    return LibraryConfig(config.file, metadata_url(metadata, path.parent), vectors, space)


def local_folder(path: Path) -> Path:
    """The folder on this machine that holds a library's files (its vector files, a running server's record):
    the library folder itself, or the vector folder a library file names."""
    path = path.expanduser()
    return read_config(path.absolute()).folder if is_config_path(path) else path


def metadata_url(url: str, base: Path) -> str:
    """``url`` with a relative SQLite file made relative to ``base`` (the library file's folder)."""
    url = url.strip()
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix:
        rest = url[len(prefix) :]
        path, _, query = rest.partition("?")
        url = prefix + str((base / path).absolute()) + (f"?{query}" if query else "")
    return url


def milvus_uri(uri: str, base: Path) -> str | None:
    """A Milvus vector store URI, checked (``milvus://name.db``, relative, made absolute against ``base``);
    None for another kind of store."""
    text = uri.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("milvus", "http", "https"):
        return None
    if scheme == "milvus" and rest.endswith(".db") and not rest.startswith("/"):
        text = f"milvus://{os.path.abspath(base / rest)}"
    from ..ann.milvus import parse_uri

    parse_uri(text)  # (a UsageError naming the URI when it is not one)
    return text


def vector_folder(uri: str, base: Path) -> Path:
    """The folder a ``faiss:`` vector store URI names (relative ones against ``base``); LibraryError for
    another kind of store."""
    scheme, sep, rest = uri.strip().partition("://")
    if not sep:
        scheme, rest = "faiss", uri.strip()  # a bare path: a local folder
    if scheme not in _VECTOR_SCHEMES:
        raise LibraryError(f"vector store {uri!r}: unknown kind {scheme!r} (faiss:///folder, "
                           "milvus:///path/file.db or milvus://host:19530)")
    if milvus_uri(uri, base) is not None:
        raise LibraryError(f"vector store {uri!r} is a Milvus, not a folder")
    if rest.startswith("/"):
        folder = Path(rest)
    else:
        folder = base / rest
    if not rest or not str(rest).strip("/"):
        raise LibraryError(f"vector store {uri!r} names no folder (faiss:///path/to/folder)")
    return Path(os.path.abspath(folder.expanduser()))
