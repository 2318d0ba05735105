"""The scale benchmark's own parts: its streamed exact top-k, its files, its measures, and the script end to end."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.append(str(BENCHMARKS))  # appended: the benchmarks' modules shadow nothing

from clustered import ClusteredVectors, exact_top_k
from peers.measure import disk_bytes, latency_ms, pick_setting, proc_status_kib, rows, timed_queries
from scale_data import ArrayStream, NpzArchive, empty_top_k, item_path, merge_top_k, position_of, write_size
from scale_processes import PEERS_PYTHON, MeasureFailed, measured, run_json_lines
from scale_summary import summaries


def _streamed_top_k(base: np.ndarray, queries: np.ndarray, k: int, chunk: int) -> np.ndarray:
    best = empty_top_k(len(queries), k)
    for start in range(0, len(base), chunk):
        best = merge_top_k(best, queries @ base[start : start + chunk].T, start)
    return best[1]


@pytest.mark.parametrize("chunk", [1, 7, 10, 333, 5000])
def test_streamed_top_k_is_the_exact_top_k(chunk):
    data = ClusteredVectors(dim=32, seed=3)
    base, queries = data.vectors(1000), data.queries(25)
    assert np.array_equal(_streamed_top_k(base, queries, 10, chunk), exact_top_k(base, queries, 10))


def test_merged_top_k_refuses_scores_of_other_queries():
    with pytest.raises(ValueError, match="cannot merge"):
        merge_top_k(empty_top_k(3, 10), np.zeros((4, 20), np.float32), 0)


def test_item_paths_give_back_their_positions():
    assert [position_of(item_path(i)) for i in (0, 9, 12_345_678)] == [0, 9, 12_345_678]


def test_an_array_stream_takes_exactly_its_rows(tmp_path):
    with open(tmp_path / "a.npy", "wb") as f:
        stream = ArrayStream(f, np.float32, (3, 2))
        stream.write(np.ones((2, 2)))
        with pytest.raises(ValueError, match="do not fit"):
            stream.write(np.ones((2, 2)))
        with pytest.raises(ValueError, match="do not fit"):
            stream.write(np.ones((1, 3)))
        with pytest.raises(ValueError, match="closed after 2"):
            stream.check_full()
        stream.write(np.full((1, 2), 7))
        stream.check_full()
    assert np.array_equal(np.load(tmp_path / "a.npy"), [[1, 1], [1, 1], [7, 7]])


def test_an_npz_written_member_by_member_loads_without_pickle(tmp_path):
    values = np.arange(12, dtype=np.float32).reshape(6, 2)
    with NpzArchive(tmp_path / "a.npz") as npz:
        with npz.member("vector", np.float32, (6, 2)) as member:
            member.write(values[:4])
            member.write(values[4:])
        npz.whole("space", np.array("name"))
    loaded = np.load(tmp_path / "a.npz", allow_pickle=False)
    assert np.array_equal(loaded["vector"], values) and loaded["space"].ndim == 0 and str(loaded["space"]) == "name"
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:  # as np.savez writes it: stored, not compressed
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


def test_one_size_is_written_with_its_exact_truth(tmp_path):
    data = write_size(tmp_path, 1200, 16, 9, "a space", "abc123")
    vectors = np.load(data.vectors)
    assert np.array_equal(vectors, ClusteredVectors(dim=16, seed=0).vectors(1200))
    assert np.array_equal(np.load(data.truth), exact_top_k(vectors, np.load(data.queries), 10))
    exported = np.load(data.import_file, allow_pickle=False)
    assert np.array_equal(exported["vector"], vectors)
    assert [position_of(p) for p in exported["path"]] == list(range(1200))
    assert set(exported["modality"]) == {"image"} and set(exported["tags"]) == {"[]"}
    assert (str(exported["space"]), str(exported["fingerprint"])) == ("a space", "abc123")


def test_rows_are_read_back_whole_and_in_order(tmp_path):
    values = np.random.default_rng(0).random((1001, 3)).astype(np.float32)
    np.save(tmp_path / "v.npy", values)
    blocks = list(rows(str(tmp_path / "v.npy"), chunk=100))
    assert [start for start, _ in blocks] == list(range(0, 1001, 100))
    assert np.array_equal(np.concatenate([b for _, b in blocks]), values)


def test_latency_is_the_nearest_rank_percentile():
    times = [0.001 * t for t in np.random.default_rng(1).permutation(np.arange(1, 201))]
    assert latency_ms(times) == {"p50_ms": 100.0, "p95_ms": 190.0}
    assert latency_ms([0.004]) == {"p50_ms": 4.0, "p95_ms": 4.0}
    with pytest.raises(ValueError):
        latency_ms([])


def test_timed_queries_keep_each_querys_ids():
    base = ClusteredVectors(dim=8, seed=1).vectors(300)
    queries = base[[5, 17, 250]]
    found, times = timed_queries(lambda q: np.argsort(-(base @ q))[:4], queries, k=10, warmup=2)
    assert found.shape == (3, 10) and len(times) == 3
    assert list(found[:, 0]) == [5, 17, 250] and (found[:, 4:] == -1).all()


def test_the_fastest_setting_that_reaches_the_target_is_picked():
    points = [{"setting": "a", "recall_at_10": 0.97, "p50_ms": 9.0},
              {"setting": "b", "recall_at_10": 0.95, "p50_ms": 3.0},
              {"setting": "c", "recall_at_10": 0.90, "p50_ms": 1.0}]
    assert pick_setting(points, 0.95)["setting"] == "b" and pick_setting(points, 0.95)["reached"]
    best = pick_setting(points, 0.99)
    assert best["setting"] == "a" and not best["reached"]


def test_memory_is_read_from_proc_status(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n")
    assert proc_status_kib("VmRSS", str(status)) == 102400 and proc_status_kib("VmHWM", str(status)) == 204800
    assert proc_status_kib("VmSwap", str(status)) is None
    if Path("/proc/self/status").exists():
        assert proc_status_kib("VmHWM") >= proc_status_kib("VmRSS") > 0


def test_disk_bytes_count_as_du_does(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a").write_bytes(b"x" * 100_000)
    (tmp_path / "b").write_bytes(b"y" * 10)
    (tmp_path / "hard").hardlink_to(tmp_path / "b")
    du = subprocess.run(["du", "-s", "--block-size=1", str(tmp_path)], capture_output=True, text=True)
    if du.returncode != 0:
        pytest.skip("no GNU du here")
    assert disk_bytes(str(tmp_path)) == int(du.stdout.split()[0])
    assert disk_bytes(str(tmp_path / "sub" / "a")) >= 100_000


def test_a_failed_process_becomes_a_skipped_row_with_its_reason(tmp_path):
    child = tmp_path / "child.py"
    child.write_text("import sys\nif sys.argv[1] == 'query':\n    sys.exit('no index here')\n"
                     "print('{\"a\": 1}')\nprint(sys.argv[2])\n")
    failing = [sys.executable, str(child), "query"]
    with pytest.raises(MeasureFailed, match="no index here"):
        run_json_lines(failing)
    assert measured("x", "query", lambda: run_json_lines(failing)) == [
        {"system": "x", "measure": "query", "skipped": "child.py query failed: no index here"}]
    first, second = run_json_lines([sys.executable, str(child), "build", "{started_at}"])
    assert first == {"a": 1} and isinstance(second, float)  # the start time, filled in


def test_summaries_take_import_and_disk_from_the_store_and_queries_from_the_variant():
    rows = [
        {"system": "lancedb", "measure": "import", "vectors_per_s": 500.0, "ingest_vectors_per_s": 9000.0},
        {"system": "lancedb", "measure": "disk", "bytes_per_item": 4200.0},
        {"system": "lancedb_ivf_pq", "measure": "query", "p50_ms": 3.0, "recall_at_10": 0.96, "setting": {"n": 1}},
        {"system": "lancedb_brute_force", "measure": "query", "skipped": "it failed"},
        {"system": "bindsearch", "measure": "import", "skipped": "missing"},
        {"system": "bindsearch", "measure": "fill_by_writer", "vectors_per_s": 90.0},
    ]
    table = {row["system"]: row for row in summaries(rows)}
    assert set(table) == {"lancedb_ivf_pq", "lancedb_brute_force", "bindsearch"}
    assert table["lancedb_ivf_pq"]["import_vectors_per_s"] == 500.0 and table["lancedb_ivf_pq"]["p50_ms"] == 3.0
    brute = table["lancedb_brute_force"]
    assert brute["bytes_per_item"] == 4200.0 and brute["import_vectors_per_s"] == 9000.0 and brute["p50_ms"] is None
    assert table["bindsearch"]["imported_by"] == "fill_by_writer" and table["bindsearch"]["recall_at_10"] is None


def _run_scale(tmp_path, systems: str, n: int = 400) -> list[dict]:
    folder = tmp_path / "data"
    # An exact limit below n: bindsearch builds (and the benchmark deletes and rebuilds) an approximate index.
    done = subprocess.run([sys.executable, str(BENCHMARKS / "scale.py"), "--sizes", str(n), "--dim", "16",
                           "--queries", "12", "--systems", systems, "--dir", str(folder)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "BINDSEARCH_EXACT_LIMIT": str(n // 4)})
    assert done.returncode == 0, done.stderr
    assert not folder.exists()  # the data is removed after
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_script_measures_bindsearch_and_flat_faiss_with_exact_recall(tmp_path):
    out = _run_scale(tmp_path, "bindsearch,faiss")
    assert all(row["benchmark"] == "scale" and row["machine"] and row["n"] == 400 for row in out)
    by = {(row["system"], row["measure"]): row for row in out}
    # Both search exactly: the streamed truth must agree with them.
    assert by["bindsearch", "query"]["recall_at_10"] == 1.0 and by["faiss_flat", "query"]["recall_at_10"] == 1.0
    query = by["bindsearch", "query"]
    assert query["p95_ms"] >= query["p50_ms"] > 0 and query["peak_rss_mib"] >= query["rss_after_warmup_mib"] > 0
    assert query["first_query_s"] > 0 and by["bindsearch", "bare_import"]["import_bindsearch_s"] > 0
    rebuild = by["bindsearch", "rebuild"]
    assert rebuild["hits"] == 10 and rebuild["rebuilt_files"] and rebuild["peak_rss_mib"] > 0
    assert rebuild["peak_rss_mib"] >= rebuild["rss_with_index_mib"] > 0 and rebuild["peak_to_index_process"] >= 1
    imported = by.get(("bindsearch", "fill_by_writer")) or by["bindsearch", "import"]
    assert imported["vectors_per_s"] > 0 and by["bindsearch", "disk"]["bytes_per_item"] > 16 * 4
    if "skipped" in by["bindsearch", "import"]:
        assert "import_vectors" in by["bindsearch", "import"]["skipped"]
    assert {row["system"] for row in out if row["measure"] == "summary"} == {"bindsearch", "faiss_flat"}


@pytest.mark.skipif(not PEERS_PYTHON.exists(), reason="the peers' environment is not made (benchmarks/peers/setup.sh)")
def test_the_script_measures_the_peers_in_their_own_environment(tmp_path):
    out = _run_scale(tmp_path, "lancedb,chroma", n=600)
    by = {(row["system"], row["measure"]): row for row in out}
    assert "skipped" not in by["peers", "peer_install"]
    assert by["lancedb_brute_force", "query"]["recall_at_10"] == 1.0
    # The query process searches as the sweep did at the chosen setting, with the same queries: LanceDB finds
    # the same hits; Chroma's graph differs from one process to the next (it replays the vectors it has not
    # yet written into its graph file, on threads), and with it the recall: by up to 0.05 at 600 vectors.
    for system, store, spread in (("lancedb_ivf_pq", "lancedb", 0.0), ("chroma_hnsw", "chroma", 0.1)):
        chosen, query = by[system, "chosen"], by[system, "query"]
        [swept] = [r for r in out
                   if r["system"] == system and r["measure"] == "sweep" and r["setting"] == chosen["setting"]]
        assert query["setting"] == chosen["setting"] and abs(query["recall_at_10"] - swept["recall_at_10"]) <= spread
        assert chosen["reached"] == (swept["recall_at_10"] >= 0.95)
        assert query["first_query_s"] > 0 and query["peak_rss_mib"] > 0
        assert by[store, "import"]["vectors_per_s"] > 0 and by[store, "disk"]["bytes_per_item"] > 16 * 4
