"""Unused vector rows (of items removed or embedded anew): optimize gives their disk space back, every live
vector reads back as it was, and a process that read its slots before cannot take a freed row for damage."""

import json
import subprocess
import sys

import numpy as np
from helpers import REPO

from bindsearch.library.holes import block_ranges, unused_runs
from bindsearch.modality import Modality
from bindsearch.vectors import l2_normalize

KEY = (Modality.IMAGE, False)


def vectors(n, dim, seed):
    return l2_normalize(np.random.default_rng(seed).normal(size=(n, dim))).astype(np.float32)


def put(lib, rows, start=0):
    with lib.writer() as w:
        for i, v in enumerate(rows, start):
            w.put(f"/data/img{i:05d}.png", Modality.IMAGE, 1 + i, 1, None, v)
        w.commit()


def test_unused_runs_and_their_blocks_match_a_row_by_row_reference():
    rng = np.random.default_rng(4)
    for _ in range(200):
        rows = int(rng.integers(0, 300))
        live = rng.choice(max(rows, 1), size=int(rng.integers(0, max(rows, 1))), replace=False) if rows else []
        runs = unused_runs(np.asarray(live, dtype=np.int64), rows)
        unused = sorted(set(range(rows)) - set(np.asarray(live).tolist()))
        assert [s for a, b in runs.tolist() for s in range(a, b)] == unused
        assert all(b < c for (_, b), (c, _) in zip(runs.tolist(), runs.tolist()[1:]))  # separate, in order
        header, row_bytes, block = int(rng.choice([0, 4096, 100])), int(rng.choice([64, 4096, 6000])), 4096
        ranges = block_ranges(runs, header, row_bytes, block)
        unused_set = set(unused)
        expected = []  # every whole block whose every byte lies in an unused row
        end = header + rows * row_bytes
        for b in range(-(-header // block) * block, end // block * block, block):
            first, last = (b - header) // row_bytes, (b + block - 1 - header) // row_bytes
            if all(r in unused_set for r in range(first, last + 1)):
                expected.append(b)
        assert [b for s, e in ranges.tolist() for b in range(s, e, block)] == expected
    assert unused_runs(np.array([5, -1, 99]), 3).tolist() == [[0, 3]]


def test_optimize_frees_the_rows_of_removed_and_re_embedded_items(library):
    first, second = vectors(400, library.dim, 1), vectors(300, library.dim, 2)
    put(library, first)
    put(library, second)  # items 0-299 embedded anew: their first rows are unused
    library.remove([f"/data/img{i:05d}.png" for i in range(350, 400)])  # and these gone
    live_ids, live = library.stored_vectors(Modality.IMAGE)
    [before] = library.index_info()
    report = library.optimize()
    [after] = report.indexes
    row = library.dim * 4
    assert report.freed_bytes > 0 and after.vector_bytes == before.vector_bytes - report.freed_bytes
    # 350 of the 700 rows are unused; the blocks shared with a live row stay.
    assert 350 * row - 2 * 4096 * 8 <= report.freed_bytes <= 350 * row
    ids, kept = library.stored_vectors(Modality.IMAGE)
    assert np.array_equal(ids, live_ids) and kept.tobytes() == live.tobytes()
    assert np.allclose(kept[:300], second) and np.allclose(kept[300:], first[300:350])
    q = second[7]
    assert library.search(q, targets=["image"], k=1)[0].path == "/data/img00007.png"
    assert library.optimize().freed_bytes == 0


def test_a_freed_row_read_through_old_slots_is_not_taken_for_damage(library, tiny_space):
    import bindsearch

    put(library, vectors(300, library.dim, 1))
    reader = bindsearch.open_library(library.path)
    stale = reader.slot_map(*KEY)  # the slots as this process read them
    put(library, vectors(300, library.dim, 2))  # every item embedded anew ...
    assert library.optimize().freed_bytes > 0  # ... and its old row freed
    # A build from the old slots reads zeros where the rows were: not damage, since the items have other rows.
    index = reader.indexes.builder.flat(KEY, stale)
    assert index.size < 300
    assert library.counts() == {Modality.IMAGE: 300}
    assert not reader.indexes.dropped.get(KEY)
    # The reader's next search sees the new rows.
    q = vectors(300, library.dim, 2)[5]
    assert reader.search(q, targets=["image"], k=1)[0].path == "/data/img00005.png"
    reader.close()


def test_a_row_really_damaged_is_still_found(library):
    put(library, vectors(50, library.dim, 1))
    slots = library.slot_map(*KEY)
    path = library.vectors.path(KEY)
    library.vectors.forget(KEY)
    with open(path, "r+b") as f:  # one flipped byte in the row of item 3
        f.seek(4096 + int(slots.slots[3]) * library.dim * 4 + 1)
        byte = f.read(1)[0]
        f.seek(-1, 1)
        f.write(bytes([byte ^ 0xFF]))
    index = library.indexes.builder.flat(KEY, slots)
    assert index.size == 49
    assert library.counts() == {Modality.IMAGE: 49}


def test_the_cli_says_what_optimize_freed(library):
    put(library, vectors(200, library.dim, 1))
    put(library, vectors(200, library.dim, 2))
    library.close()
    run = [sys.executable, "-m", "bindsearch.cli", "optimize", "--library", str(library.path)]
    shown = subprocess.run(run, capture_output=True, text=True, cwd=REPO)
    assert shown.returncode == 0, shown.stderr
    assert "freed" in shown.stdout and "on disk" in shown.stdout
    again = subprocess.run([*run, "--json"], capture_output=True, text=True, cwd=REPO)
    report = json.loads(again.stdout)
    assert report["freed_bytes"] == 0 and report["indexes"][0]["name"] == "image"
    assert report["indexes"][0]["vector_bytes"] > 0
