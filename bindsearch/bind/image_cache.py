"""The frozen image tower's embeddings of the pair images, computed once and kept in the run's folder.

Binding never changes the image tower, so its vectors are computed once:
chunk files written whole (a temporary file renamed into place), so a run
killed halfway keeps every chunk it finished and the next run embeds only the
rest. A chunk is keyed by file path, size and modification time, and the cache
by the image tower's fingerprint: another base space starts it afresh.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import MediaError, UnusableEmbedding
from ..modality import Modality
from ..spaces import Space

CACHE_DIR = "image-embeddings"
CHUNK = 256  # images per chunk file
BATCH = 32


def _key(path: str) -> str:
    st = os.stat(path)
    return f"{path}\0{st.st_size}\0{st.st_mtime_ns}"


Progress = Callable[[int, int], None]


def image_embeddings(space: Space, paths: Sequence[str], folder: Path, progress: Progress | None = None
                     ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Unit image vectors by path, and the reason of each image that could not be embedded."""
    cache = folder / CACHE_DIR
    identity = space.modality_fingerprint(Modality.IMAGE)
    marker = cache / "space.json"
    if cache.is_dir() and (not marker.is_file() or json.loads(marker.read_text()).get("image") != identity):
        shutil.rmtree(cache)  # embeddings of another image tower: of no use here
    cache.mkdir(parents=True, exist_ok=True)
    if not marker.is_file():
        _write_atomic(marker, json.dumps({"image": identity}).encode())
    vectors, failed = _load_chunks(cache)
    unique = list(dict.fromkeys(paths))
    keys = {p: _key(p) for p in unique}
    todo = [p for p in unique if keys[p] not in vectors and keys[p] not in failed]
    encoder = space.encoder(Modality.IMAGE)
    done = len(unique) - len(todo)
    if progress:
        progress(done, len(unique))
    next_chunk = len(list(cache.glob("chunk-*.npz")))
    for start in range(0, len(todo), CHUNK):
        chunk_keys, chunk_vectors, chunk_failed = [], [], {}
        part = todo[start:start + CHUNK]
        for b in range(0, len(part), BATCH):
            batch = part[b:b + BATCH]
            prepared, ok = [], []
            for p in batch:
                try:
                    prepared.append(encoder.prepare(p))
                    ok.append(p)
                except MediaError as exc:
                    chunk_failed[keys[p]] = exc.reason
            if prepared:
                try:
                    rows = encoder.embed_batch(prepared)
                    good = list(range(len(ok)))
                except UnusableEmbedding as exc:
                    rows, good = exc.vectors, [i for i in range(len(ok)) if i not in exc.rows]
                    for i in exc.rows:
                        chunk_failed[keys[ok[i]]] = exc.reason
                for i in good:
                    chunk_keys.append(keys[ok[i]])
                    chunk_vectors.append(rows[i])
            done += len(batch)
            if progress:
                progress(done, len(unique))
        _write_chunk(cache / f"chunk-{next_chunk:05d}.npz", chunk_keys, chunk_vectors, chunk_failed, space.dim)
        next_chunk += 1
        vectors.update(zip(chunk_keys, chunk_vectors))
        failed.update(chunk_failed)
    return ({p: vectors[keys[p]] for p in unique if keys[p] in vectors},
            {p: failed[keys[p]] for p in unique if keys[p] in failed})


def _load_chunks(cache: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    vectors: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    for chunk in sorted(cache.glob("chunk-*.npz")):
        try:
            with np.load(chunk, allow_pickle=False) as data:
                vectors.update(zip((str(k) for k in data["keys"]), data["vectors"]))
                failed.update(zip((str(k) for k in data["failed_keys"]), (str(r) for r in data["failed_reasons"])))
        except (OSError, ValueError, KeyError):
            chunk.unlink()  # (a damaged chunk: its images are embedded again)
    return vectors, failed


def _write_chunk(path: Path, keys: list[str], vectors: list[np.ndarray], failed: dict[str, str], dim: int) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, keys=np.array(keys, dtype=str),
                 vectors=np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32),
                 failed_keys=np.array(list(failed), dtype=str),
                 failed_reasons=np.array(list(failed.values()), dtype=str))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
