"""Libraries named by a library file (``bindsearch init``): metadata in PostgreSQL or a SQLite file elsewhere,
vectors in a folder; every command takes the file; bad files, URLs and servers are one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import psycopg
import pytest
from helpers import REPO, copy_examples

import bindsearch
from bindsearch.errors import LibraryError, SpaceMismatchError, UsageError
from bindsearch.library.config import read_config, write_config
from bindsearch.library.database import shown_url
from bindsearch.modality import Modality

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"


def bindsearch_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "bindsearch.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "BINDSEARCH_DTYPE": "fp32", **(env or {})})


def test_init_then_index_query_and_info_through_the_file(tmp_path, postgres):
    url = postgres.new_database()
    media = copy_examples(tmp_path / "media")
    made = bindsearch_cli("init", tmp_path / "media.json", "--metadata", url, "--vectors", "faiss://vectors",
                          "--space", TINY_IMAGEBIND)
    assert made.returncode == 0, made.stderr
    assert "metadata postgresql://postgres@/" in made.stdout and str(tmp_path / "vectors") in made.stdout
    assert json.loads((tmp_path / "media.json").read_text())["vectors"] == "faiss://vectors"
    indexed = bindsearch_cli("index", media, "--library", tmp_path / "media.json", "--workers", "0")
    assert indexed.returncode == 0, indexed.stderr
    # The rows are in PostgreSQL, the vectors in the folder, and no SQLite file anywhere.
    with psycopg.connect(url) as conn:
        items = conn.execute("SELECT count(*) FROM items WHERE status = 'ok'").fetchone()[0]
    assert items > 5 and list((tmp_path / "vectors" / "vectors").glob("*.f32"))
    assert not list(tmp_path.rglob("*.sqlite"))
    hits = bindsearch_cli("query", "--image", media / "cat.jpg", "-k", "1", "--json",
                          env={"BINDSEARCH_LIBRARY": str(tmp_path / "media.json")})
    assert hits.returncode == 0, hits.stderr
    assert json.loads(hits.stdout)[0]["path"] == str(media / "cat.jpg")
    shown = bindsearch_cli("info", "--library", tmp_path / "media.json", "--json")
    info = json.loads(shown.stdout)
    assert info["metadata"].startswith("postgresql://postgres@/") and info["vectors"] == str(tmp_path / "vectors")
    assert sum(info["counts"].values()) == items and info["size_bytes"] > 0


def test_the_same_vectors_whichever_database_holds_the_metadata(tmp_path, postgres):
    space = bindsearch.load_space(TINY_IMAGEBIND)
    media = copy_examples(tmp_path / "media")
    vectors = {}
    for name, url in (("pg", postgres.new_database()), ("sqlite", "sqlite:///meta.db")):
        with bindsearch.init_library(tmp_path / f"{name}.json", url, f"faiss://{name}", TINY_IMAGEBIND) as lib:
            assert lib.index([media], workers=0).failed == 0
            ids, stored = lib.stored_vectors(Modality.IMAGE)
            vectors[name] = dict(zip((p for p, _ in lib.items(ids).values()), stored))
    assert (tmp_path / "meta.db").is_file()  # (relative to the library file's folder)
    assert vectors["pg"].keys() == vectors["sqlite"].keys()
    for path, vector in vectors["pg"].items():
        np.testing.assert_array_equal(vector, vectors["sqlite"][path])
    assert space.dim == len(next(iter(vectors["pg"].values())))


def test_a_second_file_joins_the_library_a_database_holds(tmp_path, postgres):
    url = postgres.new_database()
    with bindsearch.init_library(tmp_path / "a.json", url, f"faiss://{tmp_path / 'v'}", TINY_IMAGEBIND) as lib:
        lib.index([copy_examples(tmp_path / "media")], workers=0)
        count = sum(lib.counts().values())
    with bindsearch.init_library(tmp_path / "b.json", url, f"faiss://{tmp_path / 'v'}") as joined:
        assert sum(joined.counts().values()) == count
    other = tmp_path / "other-space.json"
    other.write_text(json.dumps({**json.loads(TINY_IMAGEBIND.read_text()), "seed": 5}))
    with pytest.raises(SpaceMismatchError):
        bindsearch.init_library(tmp_path / "c.json", url, f"faiss://{tmp_path / 'v'}", other)
    assert not (tmp_path / "c.json").exists()  # nothing left behind


def test_bad_library_files_are_one_line_errors(tmp_path):
    cases = {
        "not json": ("{", "is not JSON"),
        "no marker": (json.dumps({"metadata": "sqlite:///x", "vectors": "faiss://v"}), "not a bindsearch library file"),
        "format": (json.dumps({"bindsearch_library": 9, "metadata": "sqlite:///x", "vectors": "v"}), "format 9"),
        "unknown key": (json.dumps({"bindsearch_library": 1, "metadata": "sqlite:///x", "vectors": "v", "x": 1}),
                        "unknown keys: x"),
        "no vectors": (json.dumps({"bindsearch_library": 1, "metadata": "sqlite:///x"}), "names no vectors"),
        "s3": (json.dumps({"bindsearch_library": 1, "metadata": "sqlite:///x", "vectors": "s3://b/k"}),
               "unknown kind 's3'"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        with pytest.raises(LibraryError, match=message):
            read_config(path)
        result = bindsearch_cli("info", "--library", path)
        assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr, name
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    with pytest.raises(LibraryError, match="no library file"):
        bindsearch.open_library(tmp_path / "missing.json")


def test_bad_urls_and_servers_are_one_line_errors_with_the_password_hidden(tmp_path, postgres):
    with pytest.raises(LibraryError, match="PostgreSQL .* or SQLite"):
        bindsearch.init_library(tmp_path / "my.json", "mysql://a@b/c", "faiss://v")
    refused = bindsearch_cli("init", tmp_path / "down.json", "--metadata", "postgresql://bob:hunter2@127.0.0.1:9/db",
                             "--vectors", "faiss://v", "--space", TINY_IMAGEBIND)
    assert refused.returncode != 0 and "cannot open the metadata" in refused.stderr
    assert "hunter2" not in refused.stderr and "bob:***@127.0.0.1:9/db" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "down.json").exists()
    missing_db = postgres.url("no_such_database")
    with pytest.raises(LibraryError, match="no_such_database"):
        bindsearch.init_library(tmp_path / "gone.json", missing_db, "faiss://v", TINY_IMAGEBIND)
    write_config(tmp_path / "empty.json", postgres.new_database(), "faiss://v")
    with pytest.raises(LibraryError, match="no library in .*empty.json"):
        bindsearch.open_library(tmp_path / "empty.json")
    with pytest.raises(UsageError, match="exists already"):
        write_config(tmp_path / "empty.json", "sqlite:///x", "faiss://v")
    with pytest.raises(UsageError, match="ends in .json"):
        write_config(tmp_path / "lib.txt", "sqlite:///x", "faiss://v")
    assert shown_url("postgresql://u:pw@h/d") == "postgresql://u:***@h/d"


def test_a_library_keeps_the_kind_of_vector_store_it_was_made_with(tmp_path, postgres):
    url = postgres.new_database()
    bindsearch.init_library(tmp_path / "files.json", url, "faiss://v", TINY_IMAGEBIND).close()
    with pytest.raises(LibraryError, match="keeps its vectors in a folder of vector files, not in milvus://m.db"):
        bindsearch.init_library(tmp_path / "milvus.json", url, "milvus://m.db")
    assert not (tmp_path / "milvus.json").exists()
    other = postgres.new_database()
    with bindsearch.init_library(tmp_path / "m.json", other, "milvus://m.db", TINY_IMAGEBIND) as lib:
        assert lib.info().vectors == f"milvus://{tmp_path / 'm.db'}"
    with pytest.raises(LibraryError, match="keeps its vectors in Milvus"):
        bindsearch.init_library(tmp_path / "f.json", other, "faiss://f")


def test_unreachable_or_malformed_milvus_is_a_one_line_error(tmp_path, postgres):
    refused = bindsearch_cli("init", tmp_path / "down.json", "--metadata", postgres.new_database(),
                             "--vectors", "milvus://127.0.0.1:9", "--space", TINY_IMAGEBIND)
    assert refused.returncode != 0 and "milvus://127.0.0.1:9" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert not (tmp_path / "down.json").exists() and not (tmp_path / ".down.json.d").exists()  # none left behind
    bad = bindsearch_cli("init", tmp_path / "bad.json", "--metadata", "sqlite:///x.db", "--vectors",
                         "milvus://host:notaport", "--space", TINY_IMAGEBIND)
    assert bad.returncode != 0 and "port" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_a_milvus_lite_file_open_in_another_process_is_said_so(tmp_path):
    made = bindsearch_cli("init", tmp_path / "m.json", "--metadata", "sqlite:///meta.db", "--vectors", "milvus://v.db",
                          "--space", TINY_IMAGEBIND)  # (in a process of its own: Milvus Lite keeps a file it opened)
    assert made.returncode == 0, made.stderr
    indexed = bindsearch_cli("index", copy_examples(tmp_path / "media"), "--library", tmp_path / "m.json")
    assert indexed.returncode == 0, indexed.stderr
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pymilvus import MilvusClient; "
                               f"MilvusClient({str(tmp_path / 'v.db')!r}); print('open', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        result = bindsearch_cli("query", "--text", "x", "--no-server", "--library", tmp_path / "m.json")
        assert result.returncode != 0 and "is open in another process" in result.stderr, result.stderr
        assert "milvus-lite server" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()


def test_a_schema_4_library_in_postgresql_is_migrated(tmp_path, postgres):
    url = postgres.new_database()
    with bindsearch.init_library(tmp_path / "lib.json", url, "faiss://v", TINY_IMAGEBIND) as lib:
        lib.index([copy_examples(tmp_path / "media")], workers=0)
        count = sum(lib.counts().values())
    with psycopg.connect(url) as conn:
        for table in ("pending_vectors", "writers", "claims"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    with bindsearch.open_library(tmp_path / "lib.json") as lib:
        assert lib.info().schema_version == 5 and sum(lib.counts().values()) == count
    with psycopg.connect(url) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"pending_vectors", "writers", "claims", "items", "windows", "tags", "meta"} <= tables


def test_two_writers_making_the_same_meta_row_at_once_do_not_collide(postgres):
    import threading
    import time

    from sqlalchemy import select

    from bindsearch.library.database import url_engine
    from bindsearch.library.schema import Base, Meta, bump_counter, set_meta

    engine = url_engine(postgres.new_database())
    Base.metadata.create_all(engine)
    first, second = engine.connect(), engine.connect()
    errors = []

    def other_writer():
        try:
            with second.begin():  # waits on the first's uncommitted rows, then finds them made
                set_meta(second, "roots", "b")
                bump_counter(second, "generation:image")
        except Exception as exc:
            errors.append(exc)

    with first.begin():
        set_meta(first, "roots", "a")
        bump_counter(first, "generation:image")
        thread = threading.Thread(target=other_writer)
        thread.start()
        time.sleep(0.5)
    thread.join(30)
    assert not errors, errors
    with engine.connect() as conn:
        values = dict(conn.execute(select(Meta.key, Meta.value)).all())
    assert values == {"roots": "b", "generation:image": "2"}  # both counted, the last write kept
    first.close()
    second.close()
    engine.dispose()
