"""The library's indexes chosen by size: exact below the limit, approximate above it, with everything a
query does (filters, --like, windows, removals, other processes' changes) working on both."""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO

import bindsearch
from bindsearch.filters import Filters
from bindsearch.modality import Modality
from bindsearch.vectors import l2_normalize

LIMIT = 200  # exact search up to 200 vectors in these tests (the default is 10 240 at 1024 dims)


@pytest.fixture(autouse=True)
def _small_exact_limit(monkeypatch):
    monkeypatch.setenv("BINDSEARCH_EXACT_LIMIT", str(LIMIT))


def clustered(n, dim, seed, clusters=12):
    """Unit vectors in uneven clusters around a shared offset, as embeddings lie."""
    rng = np.random.default_rng(seed)
    offset = l2_normalize(rng.normal(size=dim))
    centres = l2_normalize(rng.normal(size=(clusters, dim)))
    members = rng.choice(clusters, size=n, p=l2_normalize(rng.uniform(0.2, 1.0, clusters)) ** 2)
    spread = rng.uniform(0.3, 0.9, clusters)[members, None]
    return l2_normalize(offset + centres[members] + spread * rng.normal(size=(n, dim)) / np.sqrt(dim) * 3)


def put(lib, vectors, start=0, prefix="/data/img", tags=None):
    with lib.writer() as w:
        for i, v in enumerate(vectors, start):
            w.put(f"{prefix}{i:05d}.png", Modality.IMAGE, 1 + i, 1, f"h-{prefix}-{i}", v,
                  tags=(tags(i) if tags else ()))
        w.commit()


def brute_force(lib, query, k, keep=None):
    ids, vectors = lib.stored_vectors(Modality.IMAGE)
    if keep is not None:
        mask = np.isin(ids, keep)
        ids, vectors = ids[mask], vectors[mask]
    order = np.argsort(-(vectors @ query), kind="stable")[:k]
    return ids[order].tolist()


@pytest.fixture
def big(library):
    vectors = clustered(1500, library.dim, seed=1)
    put(library, vectors, tags=lambda i: ("rare",) if i % 97 == 0 else ("common",) if i % 2 else ())
    return library, vectors


def test_above_the_limit_the_index_is_approximate_and_finds_what_brute_force_finds(big):
    lib, _ = big
    index = lib.vector_index(Modality.IMAGE)
    assert index.kind == "ivf-rabitq" and index.size == 1500
    assert (lib.path / "index" / "image.ivf").is_file()
    queries = clustered(1560, lib.dim, seed=1)[1500:]  # the same clusters (the same seed), other points
    found = 0
    for q in queries:
        hits = lib.search(q, targets=["image"], k=10)
        exact = brute_force(lib, q, 10)
        found += len({h.id for h in hits} & set(exact))
        assert [h.id for h in lib.search(q, targets=["image"], k=10, exact=True)] == exact
    assert found / (10 * len(queries)) >= 0.95


def test_below_the_limit_it_is_exact_and_has_no_file(library):
    put(library, clustered(150, library.dim, seed=3))
    assert library.vector_index(Modality.IMAGE).kind == "flat"
    assert not list((library.path / "index").glob("*"))


def test_items_added_after_a_build_are_found_at_once_here_and_in_another_process(big, tmp_path):
    lib, _ = big
    new = clustered(40, lib.dim, seed=4)
    put(lib, new, start=5000, prefix="/data/new")
    index = lib.vector_index(Modality.IMAGE)
    assert index.stats().tail == 40  # not rebuilt for 40 (the tail is searched exactly)
    assert lib.search(new[7], targets=["image"], k=1)[0].path == "/data/new05007.png"
    code = ("import sys, numpy as np, bindsearch\n"
            "lib = bindsearch.open_library(sys.argv[1])\n"
            "v = np.frombuffer(bytes.fromhex(sys.argv[2]), '<f4')\n"
            "print(lib.search(v, targets=['image'], k=1)[0].path)\n")
    out = subprocess.run([sys.executable, "-c", code, str(lib.path), new[9].astype("<f4").tobytes().hex()],
                         capture_output=True, text=True, check=True, env=_env())
    assert out.stdout.strip() == "/data/new05009.png"


def _env():
    import os

    return {**os.environ, "BINDSEARCH_EXACT_LIMIT": str(LIMIT)}


def test_a_process_kept_open_sees_what_another_commits_meanwhile(big):
    lib, _ = big
    other = bindsearch.open_library(lib.path)
    try:
        assert other.vector_index(Modality.IMAGE).size == 1500
        new = clustered(5, lib.dim, seed=5)
        put(lib, new, start=7000, prefix="/data/late")
        lib.remove(["/data/img00003.png"])
        hits = other.search(new[2], targets=["image"], k=1)
        assert hits[0].path == "/data/late07002.png"
        assert other.vector_index(Modality.IMAGE).size == 1504
        assert all(h.path != "/data/img00003.png" for h in other.search(big[1][3], targets=["image"], k=5))
    finally:
        other.close()


def test_filters_return_k_when_k_pass_on_the_approximate_index(big):
    lib, _ = big
    rare = lib.select(Modality.IMAGE, Filters(tags=("rare",)))
    assert len(rare) == 16
    for q in clustered(5, lib.dim, seed=6):
        hits = lib.search(q, targets=["image"], k=10, filters=Filters(tags=("rare",)))
        assert [h.id for h in hits] == brute_force(lib, q, 10, keep=rare)
        broad = lib.search(q, targets=["image"], k=10, filters=Filters(tags=("common",)))
        assert len(broad) == 10 and all("common" in h.tags for h in broad)


def test_removals_and_replacements_on_the_approximate_index(big):
    lib, vectors = big
    lib.remove(["/data/img00010.png"])
    assert "/data/img00010.png" not in [h.path for h in lib.search(vectors[10], targets=["image"], k=5)]
    moved = l2_normalize(-vectors[20])
    put(lib, [moved], start=20)  # the same path, a new vector: same id
    assert lib.search(moved, targets=["image"], k=1)[0].path == "/data/img00020.png"
    assert lib.search(vectors[20], targets=["image"], k=1)[0].path != "/data/img00020.png"
    with bindsearch.open_library(lib.path) as again:  # and as a new process reads it from the file and SQLite
        assert again.search(moved, targets=["image"], k=1)[0].path == "/data/img00020.png"
        assert again.vector_index(Modality.IMAGE).size == 1499


def test_like_and_dedup_work_on_the_approximate_index(big):
    lib, vectors = big
    put(lib, [vectors[30]], start=9000, prefix="/data/copy")  # a near-copy of img00030
    like = lib.search([bindsearch.QueryTerm.like("/data/img00030.png")], targets=["image"], k=5)
    assert "/data/img00030.png" not in [h.path for h in like] and like[0].path == "/data/copy09000.png"
    deduped = lib.search(vectors[30], targets=["image"], k=5, dedup=0.99)
    assert len({h.path for h in deduped} & {"/data/img00030.png", "/data/copy09000.png"}) == 1


def test_an_index_run_rebuilds_once_the_tail_passes_its_share_and_optimize_builds_now(big):
    lib, _ = big
    put(lib, clustered(100, lib.dim, seed=7), start=20000, prefix="/data/more")  # 100 of 1500: 6.7 %
    stats = lib.vector_index(Modality.IMAGE).stats()
    assert stats.tail == 100
    built = stats.built_at
    put(lib, clustered(100, lib.dim, seed=8), start=30000, prefix="/data/most")  # now 13 %: rebuilt
    stats = lib.vector_index(Modality.IMAGE).stats()
    assert stats.tail == 0 and stats.size == 1700 and stats.built_at > built
    put(lib, clustered(3, lib.dim, seed=9), start=40000, prefix="/data/few")
    [info] = lib.optimize().indexes
    assert (info.name, info.stats.kind, info.stats.tail, info.stats.size) == ("image", "ivf-rabitq", 0, 1703)
    assert info.file_bytes > 0 and 0.9 <= info.stats.expected_recall <= 1.0


def test_an_index_that_shrinks_below_half_the_limit_goes_back_to_exact(big):
    lib, _ = big
    lib.remove([f"/data/img{i:05d}.png" for i in range(1000)])
    kept = lib.vector_index(Modality.IMAGE)
    assert kept.size == 500 and kept.kind == "ivf-rabitq"
    lib.remove([f"/data/img{i:05d}.png" for i in range(1000, 1500)])
    assert lib.vector_index(Modality.IMAGE).size == 0
    put(lib, clustered(50, lib.dim, seed=10))
    assert lib.vector_index(Modality.IMAGE).kind == "flat"
    assert not (lib.path / "index" / "image.ivf").exists()


def test_the_cli_shows_the_index_and_answers_exactly_when_asked(big):
    lib, _ = big
    run = [sys.executable, "-m", "bindsearch.cli"]
    info = subprocess.run([*run, "info", "--library", str(lib.path)], capture_output=True, text=True, env=_env(),
                          cwd=REPO)
    assert info.returncode == 0, info.stderr
    assert "ivf-rabitq" in info.stdout and "recall@10" in info.stdout
    optimize = subprocess.run([*run, "optimize", "--library", str(lib.path), "--json"], capture_output=True,
                              text=True, env=_env())
    assert optimize.returncode == 0, optimize.stderr
    [index] = json.loads(optimize.stdout)["indexes"]
    assert (index["name"], index["stats"]["kind"], index["stats"]["size"]) == ("image", "ivf-rabitq", 1500)
    query = subprocess.run([*run, "query", "--like", "/data/img00042.png", "--exact", "-k", "20", "--json",
                            "--library", str(lib.path)], capture_output=True, text=True, env=_env())
    assert query.returncode == 0, query.stderr
    found = [hit["id"] for hit in json.loads(query.stdout)]
    [item], vector = lib.stored_item_vector("/data/img00042.png")
    expected = [i for i in brute_force(lib, vector, 21) if i != item][:20]
    assert found == expected
