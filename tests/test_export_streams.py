"""Export reads the vectors a block at a time: a library's whole set of vectors never sits in memory, and what is
written is exactly what is stored."""

import json
import subprocess
import sys

import numpy as np
import pytest

import bindsearch
from bindsearch.modality import Modality
from bindsearch.vectors import l2_normalize

ROWS, DIM = 50_000, 1024  # 200 MB of vectors
SPACE = {"model": "imagebind", "checkpoint": None, "seed": 0}  # (no model is built: nothing is embedded)

CHILD = """
import json, sys
import bindsearch
import pyarrow.parquet  # (its libraries' own memory is not the export's)

def kib(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field + ":"))

with bindsearch.open_library(sys.argv[1]) as lib:
    lib.index_info()  # (its index loaded first: what a query process holds anyway)
    open("/proc/self/clear_refs", "w").write("5")  # the peak from here on
    before = kib("VmRSS")
    lib.export(sys.argv[2])
    print(json.dumps({"growth_mib": (kib("VmHWM") - before) / 1024}))
"""


@pytest.fixture(scope="module")
def big_library(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "lib"
    rng = np.random.default_rng(0)
    with bindsearch.open_library(path, SPACE, create=True) as lib, lib.writer() as writer:
        for begin in range(0, ROWS, 10_000):
            vectors = l2_normalize(rng.normal(size=(10_000, DIM))).astype(np.float32)
            writer.put_many(Modality.IMAGE, [f"/data/{i:06d}.jpg" for i in range(begin, begin + 10_000)], vectors,
                            [1] * 10_000, [1] * 10_000, tags=[("odd",) if i % 2 else () for i in range(10_000)])
    return path


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_export_holds_a_block_of_vectors_not_all_of_them(big_library, tmp_path, suffix):
    out = tmp_path / f"all{suffix}"
    done = subprocess.run([sys.executable, "-c", CHILD, str(big_library), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    growth = json.loads(done.stdout)["growth_mib"]
    # Reading them all (as export did) grew it by over 400 MiB; a block at a time stays well under 200 MiB.
    assert growth < 150, f"export of 200 MB of vectors grew the process by {growth:.0f} MiB"
    with bindsearch.open_library(big_library) as lib:
        ids, stored = lib.stored_vectors(Modality.IMAGE)
        paths = [p for p, _ in lib.items(ids).values()]
    if suffix == ".npz":
        data = np.load(out, allow_pickle=False)
        vectors, written_paths, tags = data["vector"], data["path"].tolist(), [json.loads(t) for t in data["tags"]]
        assert str(data["fingerprint"]) == lib.fingerprint
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        vectors = np.asarray(table.column("vector").combine_chunks().flatten()).reshape(-1, DIM)
        written_paths, tags = table.column("path").to_pylist(), table.column("tags").to_pylist()
        assert table.schema.metadata[b"bindsearch.fingerprint"].decode() == lib.fingerprint
    assert vectors.dtype == np.float32 and vectors.tobytes() == stored.tobytes()
    assert written_paths == paths
    assert tags[:4] == [[], ["odd"], [], ["odd"]]
