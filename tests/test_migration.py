"""A library written by the release that kept vectors in SQLite (schema 3) opens with everything in it.

``fixtures/schema3-library`` was made by that release (see its README); these tests open copies of it.
"""

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, draw_image

import bindsearch
from bindsearch.errors import LibraryError
from bindsearch.library import vector_store
from bindsearch.library.schema import SCHEMA_VERSION
from bindsearch.modality import Modality

FIXTURE = Path(__file__).parent / "fixtures" / "schema3-library"
SPACE = REPO / "examples" / "tiny-imagebind.json"


@pytest.fixture
def old_library(tmp_path):
    target = tmp_path / "lib"
    shutil.copytree(FIXTURE / "lib", target)
    return target


def _expected():
    with np.load(FIXTURE / "expected.npz") as data:
        vectors = {key: data[key] for key in data.files}
    return vectors, json.loads((FIXTURE / "expected.json").read_text())


def _schema(folder):
    with sqlite3.connect(folder / "library.sqlite") as db:
        return int(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])


def test_every_vector_window_tag_and_failure_survives_the_migration(old_library):
    vectors, facts = _expected()
    assert _schema(old_library) == 3
    with bindsearch.open_library(old_library) as lib:
        info = lib.info()
        assert info.schema_version == SCHEMA_VERSION == 5
        assert (info.counts, info.windows, info.tags) == (facts["counts"], facts["windows"], facts["tags"])
        assert [f.path for f in info.failed] == facts["failed"]
        for key, expected in vectors.items():
            kind, path, modality, *times = key.split(":")
            if kind == "item":
                _, stored = lib.stored_item_vector(path)
                assert stored.tobytes() == expected.astype("<f4").tobytes(), key  # bit for bit
                hit = lib.search(stored, targets=[modality], k=1)[0]
                assert (hit.path, hit.modality.value, hit.score) == (path, modality, pytest.approx(1.0, abs=1e-5))
            else:
                item_id = lib.stored_item_vector(path)[0][0]
                windows = {(s, e): v for s, e, v in lib.windows_of(item_id)}
                assert windows[(float(times[0]), float(times[1]))].tobytes() == expected.tobytes(), key
        tagged = lib.search(np.ones(lib.dim, np.float32), k=10, filters=bindsearch.Filters(tags=("cat",)))
        assert [Path(h.path).name for h in tagged] == ["photo1.png"]
        moments = lib.search(vectors[next(k for k in vectors if k.startswith("window:"))], targets=["audio"], k=3,
                             windows=True)
        assert moments[0].start is not None and moments[0].score == pytest.approx(1.0, abs=1e-5)
    # The vectors left the database, which gave their room back; exact indexes have no files any more.
    with sqlite3.connect(old_library / "library.sqlite") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        window_columns = {row[1] for row in db.execute("PRAGMA table_info(windows)")}
    assert "vectors" not in tables and "data" not in window_columns
    files = sorted(p.name for p in (old_library / "vectors").iterdir())
    assert files == ["audio.f32", "audio.windows.f32", "image.f32"]
    assert not list((old_library / "index").glob("*.faiss"))
    with sqlite3.connect(old_library / "library.sqlite") as db:
        assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0  # compacted: no page left unused
    # No larger than before but for the pages of the tables schema 5 adds (empty here): the vectors are gone.
    added_tables = 8 * 4096
    assert (old_library / "library.sqlite").stat().st_size < (FIXTURE / "lib" / "library.sqlite").stat().st_size \
        + added_tables


def test_a_migrated_library_takes_new_files_and_keeps_the_old_ones(old_library, tmp_path):
    media = tmp_path / "more"
    media.mkdir()
    draw_image(media / "new.png", seed=11)
    with bindsearch.open_library(old_library, SPACE) as lib:
        report = lib.index([media], workers=0)
        assert report.embedded == 1
        assert lib.counts()[Modality.IMAGE] == 5
        new = lib.stored_item_vector(str(media / "new.png"))[1]
        assert lib.search(new, targets=["image"], k=1)[0].path == str(media / "new.png")
        old = _expected()[0]["item:/tmp/bindsearch-schema3-media/photo0.png:image"]
        assert lib.search(old, targets=["image"], k=1)[0].path == "/tmp/bindsearch-schema3-media/photo0.png"


def test_a_migration_that_fails_halfway_leaves_the_old_library_and_is_done_next_time(old_library, monkeypatch):
    appended = vector_store.VectorStore.append
    calls = []

    def failing(self, vectors):
        calls.append(1)
        if len(calls) == 2:  # the first file written, the second not
            raise OSError(28, "No space left on device")
        return appended(self, vectors)

    monkeypatch.setattr(vector_store.VectorStore, "append", failing)
    with pytest.raises((LibraryError, OSError)):
        bindsearch.open_library(old_library)
    assert _schema(old_library) == 3  # the transaction rolled back: still the old library, whole
    with sqlite3.connect(old_library / "library.sqlite") as db:
        assert db.execute("SELECT count(*) FROM vectors").fetchone()[0] == 6
    monkeypatch.setattr(vector_store.VectorStore, "append", appended)
    with bindsearch.open_library(old_library) as lib:
        assert lib.info().schema_version == SCHEMA_VERSION
        assert sum(lib.counts().values()) == 6
        for key, expected in _expected()[0].items():
            if key.startswith("item:"):
                assert lib.stored_item_vector(key.split(":")[1])[1].tobytes() == expected.tobytes()


def test_a_schema_4_library_gets_the_tables_of_shared_writing(tmp_path, tiny_space):
    bindsearch.open_library(tmp_path / "lib", tiny_space, create=True).close()
    with sqlite3.connect(tmp_path / "lib" / "library.sqlite") as db:
        for table in ("pending_vectors", "writers", "claims"):
            db.execute(f"DROP TABLE {table}")
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    with bindsearch.open_library(tmp_path / "lib") as lib:
        assert lib.info().schema_version == SCHEMA_VERSION == 5
    with sqlite3.connect(tmp_path / "lib" / "library.sqlite") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"pending_vectors", "writers", "claims"} <= tables
